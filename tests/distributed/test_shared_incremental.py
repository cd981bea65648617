"""Incremental runs on real workers: the state and the source-object cache are in the
shared PostgreSQL database, so a source's next run continues from them on another
worker (another machine: another ``$MPCONNECT_HOME``), and publishes exactly what a full
run publishes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
from cluster import Cluster

from mpconnect.store.datasets import DatasetStore
from mpconnect.testing import run_source

SETTINGS = {"events": 500, "reviewers": 30, "changes": 0.05}


def _sorted(records: Any) -> list[bytes]:
    return sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in records)


def _live(store_path: Path) -> tuple[list[bytes], list[bytes]]:
    store = DatasetStore(store_path)
    try:
        live = store.live_version("REVIEWS")
        assert live is not None
        return (
            _sorted(store.iter_events("REVIEWS", live.version_id)),
            _sorted(store.iter_people("REVIEWS", live.version_id)),
        )
    finally:
        store.close()


def _dispatch(cluster: Cluster) -> dict[str, Any]:
    done = cluster.cli("--log-format", "json", "dispatch", "reviews", "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    ended = json.loads(done.stdout.splitlines()[-1])
    assert ended["state"] == "succeeded", ended
    return ended


def test_an_incremental_run_on_another_worker_continues_from_the_shared_state(
    tmp_path: Path, broker_url: str, database_url: str
) -> None:
    store_path = tmp_path / "mixpanel" / "embedded.sqlite3"  # the "Mixpanel" both load
    cluster = Cluster(
        tmp_path,
        broker_url,
        database_url,
        f'[mixpanel]\nsink = "embedded"\nstore = "{store_path}"\n\n'
        '[sources.reviews]\nconnector = "demo"\ndataset_id = "REVIEWS"\n'
        "[sources.reviews.settings]\n"
        + "".join(f"{key} = {value}\n" for key, value in SETTINGS.items()),
    )
    try:
        cluster.env["MPCONNECT_HOME"] = str(tmp_path / "machine-a")
        machine_a = cluster.worker("worker-a")
        first = _dispatch(cluster)
        assert (first["summary"]["sync"], first["summary"]["sync_reason"]) == (
            "full",
            "first run: no state yet",
        )
        cluster.stop(machine_a)

        cluster.env["MPCONNECT_HOME"] = str(tmp_path / "machine-b")  # nothing of a's
        cluster.worker("worker-b")
        second = _dispatch(cluster)
        assert second["worker"] != first["worker"]
        summary = second["summary"]
        assert summary["sync"] == "incremental", summary
        assert summary["objects"]["cached"] > 400
        assert 0 < summary["objects"]["read"] < 100
        for machine in ("machine-a", "machine-b"):  # the state and cache are not local
            assert not (tmp_path / machine / "state.sqlite3").exists()
            assert not (tmp_path / machine / "cache").exists()

        full = run_source(
            "demo",
            {**SETTINGS, "generation": 1},
            home=tmp_path / "full",
            source="reviews",
            dataset_id="REVIEWS",
        )
        assert full.summary.sync == "full"
        events, people = _live(store_path)
        assert events == _sorted(full.events)
        assert people == _sorted(full.people)

        shown = cluster.cli("state", "show", "reviews", "--json")
        assert shown.returncode == 0, shown.stderr
        info = json.loads(shown.stdout)
        assert info["state"] == {"generation": 1}
        assert info["committed_by"] == summary["run_id"]
        assert info["last_run"]["sync"] == "incremental"
        objects = summary["objects"]
        assert info["cache"]["objects"] == objects["cached"] + objects["read"]
        assert info["cache_file"].startswith("shared database postgresql://")
        text = cluster.cli("state", "show", "reviews")
        assert "state committed" in text.stdout and "generation = 1" in text.stdout
        assert "shared database" in text.stdout

        reset = cluster.cli("state", "reset", "reviews")
        assert reset.returncode == 0, reset.stderr
        assert "state and cache reset" in reset.stdout
        after = json.loads(cluster.cli("state", "show", "reviews", "--json").stdout)
        assert (after["state"], after["cache"]) == (None, None)
        third = _dispatch(cluster)
        assert third["summary"]["sync"] == "full"
    finally:
        cluster.close()
