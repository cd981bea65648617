"""Loads Mixpanel refuses as a whole fail the run at once, naming the key to fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from ingestion_support import (
    PROJECT_ID,
    SA_SECRET,
    TOKEN,
    ingestion_mixpanel_toml,
    mixpanel_table,
    profile_update,
)

from mpconnect.emulator.server import LocalDatasetsServer
from mpconnect.errors import ApiError
from mpconnect.mixpanel.refusals import request_refusal

pytestmark = pytest.mark.timeout(60)


def config_for(
    mixpanel_server: LocalDatasetsServer,
    write_config: Callable[..., Path],
    *,
    token: str = TOKEN,
    project_id: str = PROJECT_ID,
    events: int = 10_000,
) -> Path:
    mixpanel = ingestion_mixpanel_toml(mixpanel_server, token=token, project_id=project_id)
    return write_config(f"""{mixpanel}

        [engine]
        concurrency = 2

        [sources.demo]
        connector = "demo"
        dataset_id = "DEMO"

        [sources.demo.settings]
        events = {events}
        """)


def test_a_wrong_project_token_fails_the_run_at_once_naming_the_key(
    mixpanel_server: LocalDatasetsServer, write_config: Any, cli: Any
) -> None:
    config = config_for(mixpanel_server, write_config, token="not-the-token")

    result = cli("--config", config, "run", "demo")

    assert result.exit_code == 1
    assert "Mixpanel refused all 2,000 records" not in result.output  # counts are plain
    assert (
        "Mixpanel refused all 2000 records: 'properties.token' is not this project's "
        "token. The records carry the token of mixpanel.project_token, which is not "
        "this project's: set mixpanel.project_token to the project's token" in result.output
    )
    assert "quarantined 0" in result.output
    assert mixpanel_server.ingestion.stats.requests["/import", 400] <= 2  # stopped at once
    assert mixpanel_server.ingestion.stats.records_stored["/import"] == 0


def test_an_unknown_project_names_the_keys_of_the_credentials(
    mixpanel_server: LocalDatasetsServer, write_config: Any, cli: Any
) -> None:
    config = config_for(mixpanel_server, write_config, project_id="999", events=50)

    result = cli("--config", config, "run", "demo")

    assert result.exit_code == 1
    assert "Mixpanel refused the credentials (service account " in result.output
    assert (
        "project 999 is not this project; check mixpanel.service_account_user, "
        "mixpanel.service_account_secret and mixpanel.project_id" in result.output
    )
    assert SA_SECRET not in result.output


def test_records_refused_one_by_one_for_their_own_reasons_are_quarantined() -> None:
    failed = [
        {"index": i, "field": "properties.time", "message": f"time {i} is too old"}
        for i in range(12)
    ]
    same = [
        {"index": i, "field": "properties.time", "message": "time is too old"} for i in range(12)
    ]

    assert request_refusal(failed, 12, 0, "/import of 12 events") is None
    assert request_refusal(same[:11], 12, 0, "/import of 12 events") is None  # not all
    assert request_refusal(same[:3], 3, 0, "/import of 3 events") is None  # too few to tell
    assert request_refusal(same, 12, 0, "/import of 12 events") == (
        "/import of 12 events: Mixpanel refused all 12 records for the same reason "
        "(properties.time: time is too old); that is about the request, not the records: "
        "check the [mixpanel] settings and the connector's mapping of properties.time, then "
        "run again (nothing was quarantined)"
    )


def test_profile_updates_with_a_wrong_token_fail_naming_the_key(
    ingestion_server: Any, make_sink: Any
) -> None:
    sink = make_sink(mixpanel_table(ingestion_server))
    updates = [{**profile_update(i), "$token": "not-the-token"} for i in range(3)]

    with pytest.raises(ApiError) as refused:
        sink.import_batch("people", "", "", orjson.dumps(updates), len(updates))

    assert "Mixpanel refused all 3 records: '$token' is not this project's token" in str(
        refused.value
    )
    assert "set mixpanel.project_token to the project's token" in str(refused.value)
    assert ingestion_server.people() == []
