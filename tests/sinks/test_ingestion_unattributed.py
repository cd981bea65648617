"""The ingestion sink sends an event tied to no user to ``/import`` with ``distinct_id: ""``,
as Mixpanel documents for events not associated with any user."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ingestion_support import LocalIngestion, mixpanel_table

from mpconnect import Connector, ConnectorSettings, Event, RunContext
from mpconnect.testing import run_source

pytestmark = pytest.mark.timeout(60)


class GuestSale(Connector):
    """One sale by nobody."""

    name = "guest_sale"
    Settings = ConnectorSettings

    def events(self, ctx: RunContext) -> Iterator[Event]:
        yield Event(
            name="Sale",
            distinct_id="",
            time=1_700_000_000,
            object_id="s_1",
            properties={"amount": 25.0},
            unattributed=True,
        )

    def people(self, ctx: RunContext) -> Iterator[Any]:
        return iter(())


def test_an_unattributed_event_reaches_import_with_an_empty_distinct_id(
    ingestion_server: LocalIngestion, tmp_path: Path
) -> None:
    loaded = run_source(
        GuestSale,
        home=tmp_path / "home",
        mixpanel=mixpanel_table(ingestion_server, auth="project token"),
    )
    assert loaded.summary.status == "succeeded", loaded.summary.error
    assert loaded.quarantined == []
    endpoints = ingestion_server.endpoints
    held = list(ingestion_server.store.iter_events(endpoints.dataset_id, endpoints.version_id()))
    assert [(e["event"], e["properties"]["distinct_id"]) for e in held] == [("Sale", "")]
