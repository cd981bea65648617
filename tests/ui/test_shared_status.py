"""The status pages over either ledger: this machine's SQLite one and the shared
PostgreSQL one of ``[distributed]`` (a real PostgreSQL server), with the same runs written
through the ledger's own interface: the worker that ran a run, a partitioned run's
partitions, the bounded ``/metrics`` totals and the shared rate-limit buckets."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import serve_app
from test_metrics_health import _samples
from ui_support import Broken, Gated, Ticks, make_config

from mpconnect.config import Config
from mpconnect.engine.ledger import BatchRef, RunLedger, SqliteRunLedger
from mpconnect.engine.summary import RunSummary
from mpconnect.testing import connector_plugin, load_test_plugins
from mpconnect.transport.bucket import bucket_key, shared_bucket
from mpconnect.ui import ledger_queries
from mpconnect.ui.app import UiOptions
from mpconnect.ui.status import LocalStatusSource
from mpconnect.ui.wiring import standalone

PROJECT_TOKEN = "proj-token-must-never-show-7781"
#: The partitions table the partitioned runs' ledger adds (both databases accept it;
#: the shared database has it from migration 4 on).
PARTITIONS_DDL = """
CREATE TABLE IF NOT EXISTS partitions (
    spool_id TEXT NOT NULL, idx INTEGER NOT NULL, key TEXT, spec TEXT,
    status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    read BIGINT NOT NULL DEFAULT 0, quarantined BIGINT NOT NULL DEFAULT 0,
    duplicates BIGINT NOT NULL DEFAULT 0, retries BIGINT NOT NULL DEFAULT 0,
    throttled BIGINT NOT NULL DEFAULT 0, uploaded_bytes BIGINT NOT NULL DEFAULT 0,
    worker TEXT, started_at DOUBLE PRECISION, ended_at DOUBLE PRECISION, error TEXT,
    PRIMARY KEY (spool_id, idx)
)
"""
T0 = 1_760_000_000.0


class Ledgers:
    """A home, a configuration and one ledger (SQLite or PostgreSQL) with a status
    source over it, and a way to run raw SQL on that ledger's database."""

    def __init__(self, kind: str, home: Path, database_url: str | None) -> None:
        self.kind = kind
        self.home = home
        self.config: Config = make_config()
        self.config.mixpanel.project_token = PROJECT_TOKEN
        plugins = load_test_plugins(connector_plugin(Ticks, Broken, Gated), entry_points=False)
        self.database_url = database_url
        self.status, _ = standalone(lambda: self.config, plugins, home, None, None, database_url)
        self.ledger: RunLedger = self.status.ledger

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        """Run one statement on the ledger's database (``?`` placeholders)."""
        if self.database_url:
            import psycopg

            with psycopg.connect(self.database_url, autocommit=True) as db:
                db.execute(statement.replace("?", "%s").encode(), params)  # type: ignore[arg-type]
        else:
            import sqlite3

            db = sqlite3.connect(self.home / "ledger.sqlite3")
            with db:
                db.execute(statement, params)
            db.close()

    def run(self, run_id: str, source: str, status: str, start: float, **counts: Any) -> None:
        """Record a run as the engine does, with spool ``SP-run_id``."""
        host = counts.pop("host", "")
        ended = None if status == "running" else start + 30
        summary = RunSummary(
            run_id=run_id,
            source=source,
            dataset_id=source.upper(),
            sink="embedded",
            version_id=f"v-{run_id}",
            status=status,
            started_at=start,
            ended_at=ended,
            **counts,
        )
        self.ledger.record_run(summary, spool_id=f"SP-{run_id}", spool_dir=self.home, host=host)


@pytest.fixture(params=["sqlite", "postgresql"])
def ledgers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledgers]:
    """The same pages over each ledger (PostgreSQL: a real server, an empty database)."""
    url = request.getfixturevalue("database_url") if request.param == "postgresql" else None
    home = tmp_path / "home"
    home.mkdir()
    made = Ledgers(request.param, home, url)
    assert isinstance(made.status.ledger, SqliteRunLedger) == (url is None)
    try:
        yield made
    finally:
        close = getattr(made.status, "close", None)
        if close is not None:
            close()


def _serve(status: LocalStatusSource) -> Any:
    return serve_app(status, UiOptions())


def _partitioned_run(ledgers: Ledgers) -> None:
    """Runs r-part (three partitions, some batches acknowledged) and r-plain."""
    ledgers.run("r-part", "billing", "running", T0, read=900)
    ledgers.run("r-plain", "billing", "succeeded", T0 - 100, read=5, imported=5)
    # Before the partitions table exists (a ledger older than partitioned runs), or
    # before the run planned any: none.
    assert ledgers.status.partitions("r-part") == []
    ledgers.sql(PARTITIONS_DDL)
    rows = [
        (0, "2024-01", "done", 1, 400, 2, "worker-a", T0 + 1, T0 + 21, None),
        (1, "2024-02", "running", 2, 300, 0, "worker-b", T0 + 2, None, None),
        (2, "2024-03", "failed", 3, 200, 0, "worker-a", T0 + 3, T0 + 9, "429 <b>again</b>"),
    ]
    for index, key, status, attempts, read, quarantined, worker, start, end, error in rows:
        ledgers.sql(
            "INSERT INTO partitions (spool_id, idx, key, spec, status, attempts, read, "
            "quarantined, worker, started_at, ended_at, error) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                *("SP-r-part", index, key, "{}", status, attempts, read, quarantined, worker),
                *(start, end, error),
            ),
        )
    # A partition's batches live under spool RUN@pNNN; only acknowledged ones count.
    for index, counts in ((0, [200, 198]), (1, [150, 50])):
        spool = f"SP-r-part@p{index:03d}"
        for seq, count in enumerate(counts):
            ledgers.ledger.add_batch(spool, BatchRef(seq, "events", count, Path(f"/x/{seq}")))
        ledgers.ledger.ack_batch(spool, 0, counts[0])
        if index == 0:
            ledgers.ledger.ack_batch(spool, 1, counts[1])


def test_a_partitioned_runs_page_shows_each_partition(ledgers: Ledgers) -> None:
    _partitioned_run(ledgers)
    server = _serve(ledgers.status)
    try:
        data = requests.get(server.url + "/api/runs/r-part", timeout=30).json()
        html = requests.get(server.url + "/runs/r-part", timeout=30).text
        plain = requests.get(server.url + "/api/runs/r-plain", timeout=30).json()
    finally:
        server.stop()
    shown = [
        (p["index"], p["key"], p["status"], p["worker"], p["attempts"], p["read"], p["imported"])
        for p in data["partitions"]
    ]
    assert shown == [
        (0, "2024-01", "done", "worker-a", 1, 400, 398),
        (1, "2024-02", "running", "worker-b", 2, 300, 150),
        (2, "2024-03", "failed", "worker-a", 3, 200, 0),
    ]
    assert data["partitions"][0]["duration"] == 20
    assert (data["imported"], data["batches"]) == (548, 3)  # running: its partitions' acks
    assert data["partitions"][2]["error"] == "429 <b>again</b>"
    assert plain["partitions"] == []
    assert "<h2>Partitions</h2>" in html
    assert '<tr data-partition="1">' in html and "worker-b" in html and "2024-03" in html
    assert "429 &lt;b&gt;again&lt;/b&gt;" in html  # escaped, never markup


def test_the_run_page_names_the_worker(ledgers: Ledgers) -> None:
    ledgers.run("r-1", "billing", "succeeded", T0, read=3, imported=3, host="host-7")
    if ledgers.database_url:  # a worker's run: its dispatch names the worker
        from mpconnect.distributed import dispatches
        from mpconnect.distributed.connection import Database

        database = Database(ledgers.database_url)
        try:
            dispatch = dispatches.new_dispatch(database, "billing", "scheduler@s1")
            assert dispatch is not None
            assert dispatches.claim(database, dispatch, "celery@worker-2") == 1
            assert dispatches.claim(database, dispatch, "celery@worker-3") == 2  # redelivered
            dispatches.set_run(database, dispatch, "r-1")
            dispatches.finish(database, dispatch, "succeeded")
        finally:
            database.close()
    server = _serve(ledgers.status)
    try:
        data = requests.get(server.url + "/api/runs/r-1", timeout=30).json()
        html = requests.get(server.url + "/runs/r-1", timeout=30).text
    finally:
        server.stop()
    if ledgers.database_url:
        assert data["worker"] == "celery@worker-3"
        assert data["dispatch"]["attempts"] == 2
        assert data["dispatch"]["requested_by"] == "scheduler@s1"
        assert '<dd class="worker">celery@worker-3</dd>' in html
        assert "succeeded, attempt 2, asked by scheduler@s1" in html
    else:
        assert data["worker"] == "host-7" and data["dispatch"] is None
        assert '<dd class="worker">host-7</dd>' in html


def test_metrics_totals_come_from_grouped_queries(ledgers: Ledgers) -> None:
    ledgers.run("a1", "billing", "succeeded", T0, read=10, imported=9, quarantined=1)
    ledgers.run("a2", "billing", "failed", T0 + 100, read=4, retries=2, throttled=3)
    ledgers.run("a3", "billing", "running", T0 + 200, read=7)
    ledgers.ledger.add_batch("SP-a3", BatchRef(0, "events", 5, Path("/x/0")))
    ledgers.ledger.ack_batch("SP-a3", 0, 5)
    ledgers.run("b1", "orders", "superseded", T0 + 50, read=2, imported=2, uploaded_bytes=99)
    grouped = ledgers.status.run_totals()
    assert grouped == ledger_queries.totals_of_runs(ledgers.status.all_runs())
    server = _serve(ledgers.status)
    try:
        values = _samples(requests.get(server.url + "/metrics", timeout=30).text)
    finally:
        server.stop()
    assert values[("mpconnect_records_read_total", (("source", "billing"),))] == 21
    assert values[("mpconnect_records_imported_total", (("source", "billing"),))] == 14
    assert values[("mpconnect_throttled_requests_total", (("source", "billing"),))] == 3
    assert values[("mpconnect_upload_bytes_total", (("source", "orders"),))] == 99
    running = ("mpconnect_runs_total", (("source", "billing"), ("status", "running")))
    assert values[running] == 1
    last = ("mpconnect_last_success_timestamp_seconds", (("source", "billing"),))
    assert values[last] == T0 + 30
    assert values[("mpconnect_last_run_duration_seconds", (("source", "billing"),))] == 30


def test_the_shared_rate_limit_shows_on_metrics_and_the_source_page(
    ledgers: Ledgers, request: pytest.FixtureRequest
) -> None:
    # One machine keeps its buckets in files; the distributed setup shares them in Redis.
    distributed = ledgers.kind == "postgresql"
    redis_url = request.getfixturevalue("broker_url") if distributed else None
    ledgers.config.engine.rate_limit_redis_url = redis_url
    bucket = shared_bucket(
        "mixpanel", PROJECT_TOKEN, [100.0, 10_000.0], redis_url=redis_url, home=ledgers.home
    )
    bucket.take(40, 2_000)
    bucket.throttled(retry_after=None)
    stripe = shared_bucket(
        "stripe", "sk_test_never_shown", [25.0], redis_url=redis_url, home=ledgers.home
    )
    stripe.take(1)
    key = bucket_key("mixpanel", PROJECT_TOKEN)
    server = _serve(ledgers.status)
    try:
        text = requests.get(server.url + "/metrics", timeout=30).text
        page = requests.get(server.url + "/sources/billing", timeout=30).text
        api = requests.get(server.url + "/api/sources/billing", timeout=30).json()
    finally:
        server.stop()
    values = _samples(text)
    labels = (("dimension", "events"), ("key", key), ("kind", "mixpanel"))
    rate = values[("mpconnect_rate_limit_rate", labels)]
    # Halved by the 429, then recovering, never above the learned ceiling (70 %, which
    # itself creeps up 0.1 % a second).
    assert 50 <= rate < 75
    assert values[("mpconnect_rate_limit_ceiling", labels)] == 100
    assert values[("mpconnect_rate_limit_taken_total", labels)] == 40
    bytes_labels = (("dimension", "bytes"), ("key", key), ("kind", "mixpanel"))
    assert values[("mpconnect_rate_limit_ceiling", bytes_labels)] == 10_000
    throttled = ("mpconnect_rate_limit_throttled_total", (("key", key), ("kind", "mixpanel")))
    assert values[throttled] == 1
    stripe_labels = (("dimension", "requests"), ("key", stripe.key), ("kind", "stripe"))
    assert values[("mpconnect_rate_limit_rate", stripe_labels)] == 25
    for secret in (PROJECT_TOKEN, "sk_test_never_shown"):
        assert secret not in text and secret not in page and secret not in str(api)
    assert f'<tr data-bucket="{key}">' in page and "(this project)" in page
    assert [b["project"] for b in api["rate_limits"] if b["key"] == key] == [True]


def test_an_old_bucket_without_rates_still_shows_its_factor(tmp_path: Path) -> None:
    from mpconnect.transport.bucket_levels import file_levels

    folder = tmp_path / "rate-limits"
    folder.mkdir()
    now = time.time()
    (folder / "mixpanel-abc.json").write_text(f'{{"factor": 0.5, "ceiling": 1, "at": {now}}}')
    (folder / "stripe-torn.json").write_text('{"factor": 0.')
    levels = file_levels(folder, now)
    assert [(b["key"], b["factor"], b["dimensions"]) for b in levels] == [("mixpanel-abc", 0.5, [])]


def test_metrics_reuse_the_totals_for_a_few_seconds(ledgers: Ledgers) -> None:
    from mpconnect.ui.metrics import TOTALS_TTL, StatusCollector, render_metrics

    now = [100.0]
    collector = StatusCollector(ledgers.status, clock=lambda: now[0])
    ledgers.run("c1", "billing", "succeeded", T0, read=10, imported=10)

    def read_total() -> float:
        body, _ = render_metrics(collector)
        return _samples(body.decode())[("mpconnect_records_read_total", (("source", "billing"),))]

    assert read_total() == 10
    ledgers.run("c2", "billing", "succeeded", T0 + 60, read=5, imported=5)
    now[0] += TOTALS_TTL - 0.5
    assert read_total() == 10  # a scrape within the TTL: the same totals, no query
    now[0] += 0.5
    assert read_total() == 15


def test_in_a_browser_the_run_shows_its_partitions_and_the_source_its_budget(
    browser: Any, screenshot: Callable[[Any, str], Path], tmp_path: Path, database_url: str
) -> None:
    from selenium.webdriver.common.by import By

    home = tmp_path / "home"
    home.mkdir()
    ledgers = Ledgers("postgresql", home, database_url)
    _partitioned_run(ledgers)
    bucket = shared_bucket("mixpanel", PROJECT_TOKEN, [500.0, 50_000.0], home=home)
    bucket.take(100, 5_000)
    bucket.throttled()
    server = _serve(ledgers.status)
    try:
        browser.get(server.url + "/runs/r-part")
        rows = browser.find_elements(By.CSS_SELECTOR, "table.partitions tbody tr")
        cells = [[td.text for td in row.find_elements(By.TAG_NAME, "td")] for row in rows]
        assert [c[:7] for c in cells] == [
            ["0", "2024-01", "done", "worker-a", "1", "400", "398"],
            ["1", "2024-02", "running", "worker-b", "2", "300", "150"],
            ["2", "2024-03", "failed", "worker-a", "3", "200", "0"],
        ]
        assert cells[2][-1] == "429 <b>again</b>"  # shown as text
        screenshot(browser, "ui-run-partitions")
        browser.get(server.url + "/sources/billing")
        budget = browser.find_element(By.CSS_SELECTOR, "table.rate-limits tbody tr")
        assert "(this project)" in budget.text and "events" in budget.text
        assert PROJECT_TOKEN not in browser.page_source
        screenshot(browser, "ui-source-rate-limits")
    finally:
        server.stop()
        ledgers.status.close()  # type: ignore[attr-defined]
