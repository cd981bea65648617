"""A connector that stops early on purpose (``SourcePaused``, an API quota): what it read
is kept, nothing is published, the run is ``paused: REASON``, the next run goes on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from engine_support import make_config, make_engine

import mpconnect
from mpconnect.store.datasets import DatasetStore


class PagedConnector(mpconnect.Connector):
    """Reads 50 tickets by pages of 10, its cursor the next page; pauses once after
    ``pause_after`` pages when asked."""

    name = "paged"
    incremental = True
    pause_after: int | None = None

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        page = 0 if ctx.full_refresh else int(ctx.state.get("page", 0))
        if ctx.full_refresh:
            ctx.state["page"] = 0
        done = 0
        while page < 5:
            if type(self).pause_after is not None and done == type(self).pause_after:
                type(self).pause_after = None
                raise mpconnect.SourcePaused("api quota", "daily API calls nearly spent")
            for index in range(page * 10, page * 10 + 10):
                yield mpconnect.Event(
                    "Ticket", f"user-{index % 4}", 1_700_000_000 + index, object_id=f"t{index}"
                )
            page += 1
            done += 1
            ctx.state["page"] = page  # the last complete page

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        yield from ()


class PagedPlugin:
    """Registers :class:`PagedConnector`."""

    @mpconnect.hookimpl
    def register_connectors(self, register: Callable[[type], None]) -> None:
        register(PagedConnector)


def test_a_paused_run_keeps_what_it_read_publishes_nothing_and_the_next_run_goes_on(
    tmp_path: Path, home: Path
) -> None:
    config = make_config(
        tmp_path,
        {"tickets": {"connector": "paged", "dataset_id": "TICKETS"}},
        mixpanel={"sink": "embedded", "store": str(home / "embedded.sqlite3")},
    )
    engine = make_engine(config, home, PagedPlugin())
    PagedConnector.pause_after = 2
    paused = engine.run("tickets")
    assert paused.status == "paused: api quota"
    assert paused.objects == {"read": 20, "changed": 20, "deleted": 0, "cached": 0}
    assert "tickets: paused: api quota" in paused.describe()
    row = engine.ledger.list_runs("tickets")[0]
    assert row["status"] == "paused: api quota"
    store = DatasetStore(home / "embedded.sqlite3")
    assert store.live_version("TICKETS") is None
    assert store.list_versions("TICKETS") == []  # the unpublished version was deleted

    going_on = engine.run("tickets")
    assert going_on.status == "succeeded" and going_on.sync == "incremental"
    assert going_on.objects == {"read": 30, "changed": 30, "deleted": 0, "cached": 20}
    live = store.live_version("TICKETS")
    assert live is not None
    ids = sorted(
        e["properties"]["$insert_id"] for e in store.iter_events("TICKETS", live.version_id)
    )
    assert len(ids) == len(set(ids)) == 50
    store.close()
