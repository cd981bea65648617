"""A refused credential names the ``[mixpanel]`` keys that hold it."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest
from ingestion_support import LocalIngestion, event, mixpanel_table

from mpconnect.errors import ApiError
from mpconnect.sinks.ingestion import IngestionSink


def test_a_refused_service_account_names_its_keys(
    ingestion_server: LocalIngestion,
    make_sink: Callable[..., IngestionSink],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MP_SA_SECRET", "not-the-secret")
    sink = make_sink(mixpanel_table(ingestion_server))

    with pytest.raises(ApiError) as caught:
        sink.import_batch("events", "DEMO", "run-1", orjson.dumps([event(0)]), 1)

    assert caught.value.status == 401
    assert "check mixpanel.service_account_user, mixpanel.service_account_secret" in str(
        caught.value
    )
    assert "not-the-secret" not in str(caught.value)
