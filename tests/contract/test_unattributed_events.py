"""Events tied to no user: ``Event(unattributed=True)`` with ``distinct_id`` ``""``.

An empty id sent by mistake stays refused; one sent on purpose is what Mixpanel's
``/import`` documents for an event with no user. The embedded sink stores it; the
``datasets`` sink, whose API documents no empty distinct_id, quarantines it with the
reason and the fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mpconnect import Connector, ConnectorSettings, Event, RecordError, RunContext
from mpconnect.testing import datasets_sink_settings, local_datasets_server, run_source

pytestmark = pytest.mark.timeout(60)

WHEN = 1_700_000_000


def test_an_empty_distinct_id_by_mistake_is_still_refused() -> None:
    event = Event(name="Charge Succeeded", distinct_id="", time=WHEN, object_id="ch_1")
    with pytest.raises(RecordError, match="placeholder id"):
        event.to_mixpanel("token")


def test_an_unattributed_event_is_sent_with_an_empty_distinct_id() -> None:
    event = Event(
        name="Charge Succeeded",
        distinct_id="",
        time=WHEN,
        object_id="ch_1",
        properties={"amount": 42.0},
        unattributed=True,
    )
    sent = event.to_mixpanel("token")
    assert sent["properties"]["distinct_id"] == ""
    assert sent["properties"]["amount"] == 42.0


def test_an_unattributed_event_with_an_id_is_a_contradiction() -> None:
    event = Event(
        name="Charge Succeeded", distinct_id="cus_1", time=WHEN, object_id="ch_1", unattributed=True
    )
    with pytest.raises(RecordError, match="an event tied to no user has distinct_id ''"):
        event.to_mixpanel("token")


class GuestSales(Connector):
    """One sale by a known customer, one by nobody."""

    name = "guest_sales"
    Settings = ConnectorSettings

    def events(self, ctx: RunContext) -> Iterator[Event]:
        yield Event(
            name="Sale",
            distinct_id="cus_1",
            time=WHEN,
            object_id="s_1",
            properties={"amount": 10.0},
        )
        yield Event(
            name="Sale",
            distinct_id="",
            time=WHEN,
            object_id="s_2",
            properties={"amount": 25.0},
            unattributed=True,
        )

    def people(self, ctx: RunContext) -> Iterator[Any]:
        return iter(())


def test_the_embedded_sink_stores_an_event_tied_to_no_user(tmp_path: Path) -> None:
    loaded = run_source(GuestSales, home=tmp_path / "home")
    assert loaded.quarantined == []
    by_id = {e["properties"]["distinct_id"]: e["properties"]["amount"] for e in loaded.events}
    assert by_id == {"cus_1": 10.0, "": 25.0}


def test_the_datasets_sink_quarantines_it_with_the_reason_and_the_fix(tmp_path: Path) -> None:
    with local_datasets_server(tmp_path / "server") as server:
        loaded = run_source(
            GuestSales,
            home=tmp_path / "home",
            mixpanel=datasets_sink_settings(server),
            store=server.store,
            max_quarantined=1,
        )
    assert [e["properties"]["distinct_id"] for e in loaded.events] == ["cus_1"]
    (entry,) = loaded.quarantined
    assert entry.what == "event 'Sale' object s_2 (distinct_id '')"
    assert "cannot go to the 'datasets' sink" in entry.reason
    assert "Datasets API documents no empty distinct_id" in entry.reason
    assert 'sink = "ingestion"' in entry.reason
    assert 'unattributed = "skip"' in entry.reason
