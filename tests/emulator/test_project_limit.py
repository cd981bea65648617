"""The local server's project rate limit: a rolling window of records and bytes, 429 with
``Retry-After`` past it, on ``/import`` and the Datasets API's imports alike."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import orjson
import pytest
import requests

from mpconnect.emulator.server import LocalDatasetsServer, ProjectLimit

TOKEN = "tok-limit"
SECRET = "secret-limit"


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def test_the_window_rolls_and_retry_after_says_when() -> None:
    clock = Clock()
    limit = ProjectLimit(events=100, window=60, clock=clock)
    assert limit.admit(60, 1000) is None
    clock.now += 10
    assert limit.admit(40, 1000) is None
    clock.now += 5
    assert limit.admit(1, 10) == 45.0  # the first 60 roll off 60 s after they came
    clock.now += 45
    assert limit.admit(50, 10) is None
    assert limit.accepted() == 150
    assert limit.refused() == 1
    assert limit.busiest_window() == 100


def test_bytes_are_limited_too() -> None:
    clock = Clock()
    limit = ProjectLimit(bytes=1000, window=60, clock=clock)
    assert limit.admit(1, 900) is None
    assert limit.admit(1, 200) is not None
    assert limit.admit(1, 100) is None


def test_no_limit_counts_but_refuses_nothing() -> None:
    limit = ProjectLimit()
    assert not limit.enabled
    assert all(limit.admit(2000, 10_000_000) is None for _ in range(100))
    assert limit.accepted() == 200_000


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        ProjectLimit(events=-1)
    with pytest.raises(ValueError, match="window"):
        ProjectLimit(events=1, window=0)


def _event(i: int) -> dict[str, object]:
    return {
        "event": "Review",
        "properties": {
            "time": int(time.time()) - 60,
            "distinct_id": f"user-{i}",
            "$insert_id": f"id-{i}",
            "token": TOKEN,
        },
    }


def test_both_import_paths_share_the_projects_budget_and_answer_429(tmp_path: Path) -> None:
    with LocalDatasetsServer(
        tmp_path,
        datasets=["DEMO"],
        project_token=TOKEN,
        project_secret=SECRET,
        project_limit=ProjectLimit(events=10, window=60),
    ) as server:
        session = requests.Session()
        version = session.post(
            f"{server.url}/datasets/DEMO/versions",
            auth=(SECRET, ""),
            verify=str(server.ca_path),
            data={"token": TOKEN},
        ).json()["data"]["version_id"]
        imported = session.post(
            f"{server.url}/import-events",
            auth=(SECRET, ""),
            verify=str(server.ca_path),
            data={
                "dataset_id": "DEMO",
                "dataset_version": version,
                "data": base64.b64encode(orjson.dumps([_event(i) for i in range(6)])).decode(),
            },
        )
        assert imported.status_code == 200, imported.text
        refused = session.post(
            f"{server.url}/import?strict=1",
            auth=(SECRET, ""),
            verify=str(server.ca_path),
            json=[_event(i) for i in range(6, 12)],
        )
        assert refused.status_code == 429
        assert refused.json()["error"].startswith("Project exceeded rate limits")
        assert 1 <= float(refused.headers["Retry-After"]) <= 60
        again = session.post(
            f"{server.url}/import-events",
            auth=(SECRET, ""),
            verify=str(server.ca_path),
            data={
                "dataset_id": "DEMO",
                "dataset_version": version,
                "data": base64.b64encode(orjson.dumps([_event(20)] * 5)).decode(),
            },
        )
        assert again.status_code == 429
        assert "Retry-After" in again.headers
        assert again.json() == {
            "error": "Project exceeded rate limits. Please retry the request with "
            "exponential backoff.",
            "status": 0,
        }
        assert server.project_limit.accepted() == 6
        assert server.project_limit.refused() == 2
        assert server.ingestion.stats.count("/import", 429) == 1
