"""``mpconnect ui`` as a user starts it, and what it costs ``mpconnect --help``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import requests
from ui_support import UiHome


def test_ui_serves_the_pages_of_the_home(tmp_path: Path) -> None:
    env = {**os.environ, "MPCONNECT_HOME": str(tmp_path / "home")}
    env.pop("MPCONNECT_CONFIG", None)
    ran = subprocess.run(
        [sys.executable, "-m", "mpconnect", "run", "demo", "--quiet"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    process = subprocess.Popen(
        [sys.executable, "-m", "mpconnect", "ui", "--port", "0"],
        env=env,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        match = re.search(r"status page at (http://127\.0\.0\.1:\d+)/", line)
        assert match, line
        url = match.group(1)
        sources = requests.get(url + "/api/sources", timeout=30).json()
        assert [s["name"] for s in sources] == ["demo"]
        assert sources[0]["last_run"]["status"] == "succeeded"
        assert sources[0]["freshness"] == "unscheduled"
        last = sources[0]["last_run"]
        assert last["imported"] == last["read"] > 10_000
        page = requests.get(url + f"/runs/{last['run_id']}", timeout=30)
        assert "succeeded" in page.text and f"{last['imported']:,} in " in page.text
        assert requests.get(url + "/healthz", timeout=30).json() == {
            "status": "ok",
            "scheduler": None,
        }
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_help_does_not_load_the_status_pages_libraries() -> None:
    script = (
        "import sys, json\nfrom mpconnect.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(json.dumps([m for m in ('aiohttp', 'jinja2', 'prometheus_client', "
        "'mpconnect.ui.app') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert "ui" in out.stdout  # the command is listed
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_a_failed_run_records_where_it_failed(ui_home: UiHome) -> None:
    from mpconnect.engine.ledger import SqliteRunLedger

    ledger = SqliteRunLedger(ui_home.home / "ledger.sqlite3")
    phases = {p["phase"]: p for p in ledger.phases(ui_home.runs["crm"].run_id)}
    assert phases["create"]["ok"] is True
    assert phases["extract"]["ok"] is False and phases["import"]["ok"] is False
    assert "publish" not in phases
    assert all(p["ended_at"] >= p["started_at"] for p in phases.values())
