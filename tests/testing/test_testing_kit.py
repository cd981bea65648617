"""``mpconnect.testing``: ``run_connector`` validates as the engine does, and the engine
helpers run into the embedded store and the local datasets server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mpconnect
from mpconnect.testing import (
    EmbeddedTarget,
    datasets_sink_settings,
    local_datasets_server,
    run_connector,
    run_source,
)

pytestmark = pytest.mark.timeout(120)

WHEN = 1_700_000_000


class Huge(mpconnect.Connector):
    """Yields, among good records, an event and a profile holding an integer of 2**70."""

    name = "huge"
    Settings = mpconnect.ConnectorSettings

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        yield mpconnect.Event(
            name="Order", distinct_id="u1", time=WHEN, object_id="o1", properties={"amount": 2**70}
        )
        yield mpconnect.Event(
            name="Order", distinct_id="u2", time=WHEN, object_id="o2", properties={"amount": 1}
        )

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        yield mpconnect.Profile(distinct_id="u1", set={"lifetime": 2**70}, object_id="u1")
        yield mpconnect.Profile(distinct_id="u2", set={"lifetime": 1}, object_id="u2")


def wrong_yield(events: list[Any], people: list[Any]) -> type[mpconnect.Connector]:
    """A connector whose generators yield the given objects."""

    class Wrong(mpconnect.Connector):
        name = "wrong"
        Settings = mpconnect.ConnectorSettings

        def events(self, ctx: mpconnect.RunContext) -> Iterator[Any]:
            yield from events

        def people(self, ctx: mpconnect.RunContext) -> Iterator[Any]:
            yield from people

    return Wrong


def test_run_connector_quarantines_values_json_cannot_encode_as_the_engine_does(
    tmp_path: Path,
) -> None:
    collected = run_connector(Huge)
    loaded = run_source(Huge, home=tmp_path / "home", max_quarantined=10)

    assert [e["properties"]["amount"] for e in collected.events] == [1]
    assert collected.profile("u2") == {"lifetime": 1} and collected.profiles == {"u2"}
    reasons = [(q.what, q.reason) for q in collected.quarantined]
    assert [reason for _, reason in reasons] == [
        "a value cannot be encoded as JSON: Integer exceeds 64-bit range"
    ] * 2
    assert reasons[0][0].startswith("event 'Order' ($insert_id ")
    assert reasons[0][0].endswith(", distinct_id 'u1')")
    assert reasons[1][0] == "profile (distinct_id 'u1')"
    assert str(2**70) in collected.quarantined[0].data["repr"]

    assert loaded.summary.status == "succeeded"
    assert reasons == [(q.what, q.reason) for q in loaded.quarantined]
    assert [e["properties"]["amount"] for e in loaded.events] == [1]


def test_run_connector_refuses_what_is_not_an_event_or_a_profile() -> None:
    event = mpconnect.Event(name="Order", distinct_id="u1", time=WHEN, object_id="o1")

    with pytest.raises(mpconnect.PluginError) as error:
        run_connector(wrong_yield([event, {"event": "Order"}], []))
    assert str(error.value) == (
        "connector 'wrong' yielded {'event': 'Order'} from events(); expected mpconnect.Event"
    )

    with pytest.raises(mpconnect.PluginError) as error:
        run_connector(wrong_yield([event], [event]))
    assert str(error.value) == (
        f"connector 'wrong' yielded {event!r} from people(); expected mpconnect.Profile"
    )


def test_run_source_loads_through_the_local_datasets_server(tmp_path: Path) -> None:
    with local_datasets_server(tmp_path / "server", datasets=["REVIEWS"]) as server:
        loaded = run_source(
            "demo",
            {"events": 40, "bad_records": 1},
            home=tmp_path / "home",
            mixpanel=datasets_sink_settings(server),
            store=server.store,
            dataset_id="REVIEWS",
        )

        assert loaded.summary.status == "succeeded"
        assert loaded.summary.sink == "datasets"
        assert loaded.events_by_name == {"Airline Review": 40}
        assert len(loaded.profiles) == 4
        assert server.store.live_version("REVIEWS").version_id == loaded.summary.version_id
    assert [q.field for q in loaded.quarantined] == ["time"]


def test_embedded_target_cli_leaves_logging_as_it_found_it(tmp_path: Path) -> None:
    import logging

    logger = logging.getLogger("mpconnect")
    before = (list(logger.handlers), logger.level, logger.propagate)
    target = EmbeddedTarget(tmp_path / "home")

    result = target.cli("run", "demo")

    assert result.exit_code == 0, result.output
    assert "demo: succeeded" in result.stdout
    assert (list(logger.handlers), logger.level, logger.propagate) == before
    assert target.versions("DEMO")[0].is_live


def test_the_kit_asserts_incremental_runs_of_the_demo_match_its_full_runs(tmp_path: Path) -> None:
    from mpconnect.testing import assert_incremental_matches_full

    loaded = assert_incremental_matches_full(
        "demo", {"events": 300, "reviewers": 20, "changes": 0.05}, home=tmp_path, runs=3
    )
    assert [run.summary.sync for run in loaded] == ["full", "incremental", "incremental"]
    assert len(loaded[-1].events) == 300


def test_the_kit_names_the_first_difference_of_a_wrong_incremental_connector(
    tmp_path: Path,
) -> None:
    from mpconnect.testing import assert_incremental_matches_full

    class Forgetful(mpconnect.Connector):
        """Claims to read incrementally, but forgets to report a deleted object."""

        name = "forgetful"
        incremental = True

        def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
            count = 3 if ctx.full_refresh or "read" not in ctx.state else 0
            ctx.state["read"] = True
            alive = 2 if (tmp_path / "deleted").exists() else 3
            for index in range(min(count, alive)):
                yield mpconnect.Event("Tick", "user-1", 1_700_000_000, object_id=f"t{index}")

        def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
            yield from ()

    with pytest.raises(AssertionError, match="run 2: the incremental snapshot's event records"):
        assert_incremental_matches_full(
            Forgetful,
            home=tmp_path / "runs",
            runs=2,
            change=lambda number: (tmp_path / "deleted").touch(),
        )
