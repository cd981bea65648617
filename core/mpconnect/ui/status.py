"""What the status pages show, read through one small interface.

:class:`StatusSource` is what the web application asks; :class:`LocalStatusSource`
answers from this machine: the run ledger, the configuration, the sink (versions) and
the quarantine files under ``$MPCONNECT_HOME``. A source backed by a shared database
(distributed mode) implements the same methods. Every value is plain JSON data; every
error text goes through :func:`mpconnect.redact.redact` on its way out.
"""

from __future__ import annotations

import collections
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from mpconnect.config import Config
from mpconnect.engine.ledger import RunLedger, SqliteRunLedger
from mpconnect.errors import MpconnectError
from mpconnect.plugins import Plugins
from mpconnect.redact import redact
from mpconnect.sink import VersionInfo
from mpconnect.ui import ledger_queries
from mpconnect.ui.freshness import freshness, schedule_times

#: The fields of a ledger run the pages and the API show (never paths, keys or pids).
RUN_FIELDS = (
    "run_id",
    "source",
    "dataset_id",
    "sink",
    "version_id",
    "status",
    "started_at",
    "ended_at",
    "duration",
    "read",
    "imported",
    "quarantined",
    "retries",
    "batches",
    "resumed",
    "duplicates",
    "published",
    "error",
    "host",
    "throttled",
    "uploaded_bytes",
)
#: Runs a source page lists.
HISTORY = 50


class StatusSource(ABC):
    """Where the status pages read sources, runs, quarantined records and datasets."""

    @abstractmethod
    def sources(self) -> list[dict[str, Any]]:
        """Return each configured source with its schedule, last run and freshness."""

    @abstractmethod
    def source_runs(self, name: str, limit: int = HISTORY) -> list[dict[str, Any]] | None:
        """Return the source's runs, newest first (None: no such source nor runs)."""

    @abstractmethod
    def run(self, run_id: str) -> dict[str, Any] | None:
        """Return one run with its phases, throughput and quarantine summary."""

    @abstractmethod
    def quarantine(self, run_id: str, samples: int = 20) -> dict[str, Any] | None:
        """Return the run's quarantine: reasons with counts and sample records."""

    @abstractmethod
    def quarantine_lines(self, run_id: str) -> Iterator[bytes] | None:
        """Return the run's quarantine file, line by line, secrets redacted (None: none)."""

    @abstractmethod
    def datasets(self) -> list[dict[str, Any]]:
        """Return each configured dataset with its versions (or the error reading them)."""

    @abstractmethod
    def all_runs(self) -> list[dict[str, Any]]:
        """Return every run, newest first."""

    def run_totals(self) -> dict[str, Any]:
        """Return the per-source totals ``/metrics`` exposes (see
        :func:`mpconnect.ui.ledger_queries.empty_totals`)."""
        return ledger_queries.totals_of_runs(self.all_runs())

    def partitions(self, run_id: str) -> list[dict[str, Any]]:
        """Return a partitioned run's partitions in order (empty: not partitioned, or a
        ledger without partitions)."""
        return []

    def rate_limits(self) -> list[dict[str, Any]]:
        """Return the level of each shared rate-limit bucket (keyed by a hash, never a
        token)."""
        return []


def shown_run(row: dict[str, Any]) -> dict[str, Any]:
    """A ledger row as pages show it: the public fields, the error redacted."""
    run = {name: row.get(name) for name in RUN_FIELDS}
    run["resumed"] = bool(run["resumed"])
    run["published"] = bool(run["published"])
    if run["error"]:
        run["error"] = redact(str(run["error"]))
    run["has_quarantine"] = bool(row.get("quarantined")) and bool(row.get("quarantine_file"))
    return run


def version_state(version: VersionInfo) -> str:
    """One word for a version's state: live, ready, readable, writing or sealed."""
    if version.is_live:
        return "live"
    if version.ready:
        return "ready"
    if version.readable:
        return "readable"
    return "writing" if version.writable else "sealed"


class LocalStatusSource(StatusSource):
    """The status of this machine's runs.

    :param config: returns the configuration in use (it may be reloaded).
    :param plugins: the loaded plugins (to open the sink).
    :param home: the data directory.
    :param ledger: the run ledger (default: the one under ``home``).
    :param next_run: the scheduler's next run of a source, when a scheduler serves the
        pages (default: the next time of the source's cron).
    :param clock: the current time (epoch seconds).
    """

    def __init__(
        self,
        config: Callable[[], Config],
        plugins: Plugins,
        home: Path,
        ledger: RunLedger | None = None,
        next_run: Callable[[str], datetime | None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self.plugins = plugins
        self.home = home
        self.ledger = ledger or SqliteRunLedger(home / "ledger.sqlite3")
        self._next_run = next_run
        self._clock = clock

    # -- sources and runs ----------------------------------------------------------------

    def sources(self) -> list[dict[str, Any]]:
        """Each configured source (and any source with runs), by name."""
        config = self._config()
        from mpconnect.scheduler.cron import load_zone

        try:
            zone = load_zone(config.scheduler.timezone)
        except MpconnectError:
            zone = load_zone("UTC")
        now = self._clock()
        moment = datetime.fromtimestamp(now, UTC)
        names = sorted(config.sources)
        result = []
        for name in names:
            source = config.sources[name]
            runs = self.ledger.list_runs(name, limit=HISTORY)
            next_time, period = schedule_times(source.schedule, zone, moment)
            if self._next_run is not None:
                next_time = self._next_run(name) or next_time
            last = runs[0] if runs else None
            success = next((r for r in runs if r["status"] in ("succeeded", "superseded")), None)
            last_success = success["ended_at"] if success else None
            result.append(
                {
                    "name": name,
                    "connector": source.connector,
                    "dataset_id": source.dataset_id,
                    "schedule": source.schedule,
                    "period": period,
                    "next_run": next_time.timestamp() if next_time else None,
                    "last_run": shown_run(last) if last else None,
                    "last_at": (last["ended_at"] or last["started_at"]) if last else None,
                    "last_success": last_success,
                    "live_version": success["version_id"]
                    if success and success["published"]
                    else None,
                    "freshness": freshness(last_success, period, now),
                }
            )
        return result

    def source_runs(self, name: str, limit: int = HISTORY) -> list[dict[str, Any]] | None:
        """The source's runs, newest first."""
        runs = self.ledger.list_runs(name, limit=limit)
        if not runs and name not in self._config().sources:
            return None
        return [shown_run(row) for row in runs]

    def run(self, run_id: str) -> dict[str, Any] | None:
        """One run with its phases and throughput."""
        row = self.ledger.get_run(run_id)
        if row is None:
            return None
        run = shown_run(row)
        run["phases"] = self.ledger.phases(run_id)
        acks = self.ledger.acks(row["spool_id"], row["started_at"]) if row["spool_id"] else []
        total = 0
        points = []
        for when, imported in acks:
            total += imported
            points.append({"time": when, "imported": total})
        run["throughput"] = points
        dispatch = self._dispatch(run_id)
        run["dispatch"] = dispatch
        run["worker"] = (dispatch or {}).get("worker") or row.get("host") or None
        run["partitions"] = self._partitions_of(row)
        if run["partitions"] and run["status"] == "running":
            # A partitioned run's batches are its partitions' spools: what they acknowledged.
            run["imported"] = sum(p["imported"] for p in run["partitions"])
            run["batches"] = sum(p["batches"] for p in run["partitions"])
        return run

    def _dispatch(self, run_id: str) -> dict[str, Any] | None:
        """The dispatch that asked for the run (distributed mode only)."""
        return None

    def partitions(self, run_id: str) -> list[dict[str, Any]]:
        """The run's partitions, from the ledger's ``partitions`` table if it has one."""
        row = self.ledger.get_run(run_id)
        return self._partitions_of(row) if row is not None else []

    def _partitions_of(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        if not row.get("spool_id") or not self._has_table("partitions"):
            return []
        return ledger_queries.partitions(self._fetch, self.MARK, row["spool_id"])

    # -- the ledger's tables, read directly (bounded queries) ---------------------------

    #: The database's placeholder.
    MARK = "?"

    def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        """Run one read-only statement on the SQLite ledger."""
        if not isinstance(self.ledger, SqliteRunLedger):
            return []
        db = sqlite3.connect(f"file:{self.ledger.path}?mode=ro", uri=True, timeout=10)
        try:
            db.row_factory = sqlite3.Row
            return [dict(row) for row in db.execute(sql, params)]
        finally:
            db.close()

    def _has_table(self, name: str) -> bool:
        found = self._fetch(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        )
        return bool(found)

    def run_totals(self) -> dict[str, Any]:
        """Per-source totals in a few grouped queries (not every run, as ``all_runs``)."""
        if not isinstance(self.ledger, SqliteRunLedger):
            return super().run_totals()
        return ledger_queries.run_totals(self._fetch, self.MARK)

    def rate_limits(self) -> list[dict[str, Any]]:
        """The shared buckets: in the Redis of ``[engine] rate_limit_redis_url``, else
        under ``$MPCONNECT_HOME/rate-limits``; the project's own marked ``project``."""
        from mpconnect.transport.bucket import bucket_key
        from mpconnect.transport.bucket_levels import file_levels, redis_levels

        config = self._config()
        url = config.engine.rate_limit_redis_url
        try:
            levels = redis_levels(url) if url else file_levels(self.home / "rate-limits")
        except Exception as exc:  # an unreachable Redis: the page says so
            return [{"error": redact(f"cannot read the rate limits: {exc}")}]
        token = config.mixpanel.project_token
        project = bucket_key("mixpanel", token) if token else None
        for item in levels:
            item["project"] = item["key"] == project
        return levels

    def all_runs(self) -> list[dict[str, Any]]:
        """Every run, newest first."""
        return self.ledger.list_runs(limit=1_000_000)

    # -- quarantine ----------------------------------------------------------------------

    def _quarantine_path(self, run_id: str) -> Path | None:
        row = self.ledger.get_run(run_id)
        if row is None or not row.get("quarantine_file"):
            return None
        path = Path(row["quarantine_file"])
        root = (self.home / "quarantine").resolve()
        try:
            resolved = path.resolve()
        except OSError:
            return None
        if not resolved.is_relative_to(root) or not resolved.is_file():
            return None
        return resolved

    def quarantine(self, run_id: str, samples: int = 20) -> dict[str, Any] | None:
        """Reasons with counts (most frequent first) and the first ``samples`` records."""
        row = self.ledger.get_run(run_id)
        if row is None:
            return None
        reasons: collections.Counter[str] = collections.Counter()
        shown: list[dict[str, Any]] = []
        path = self._quarantine_path(run_id)
        lines = 0
        if path is not None:
            with path.open("rb") as handle:
                for raw in handle:
                    try:
                        entry = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        entry = {
                            "what": "an unreadable line",
                            "reason": "not JSON",
                            "record": raw.decode("utf-8", "replace")[:2000],
                        }
                    lines += 1
                    reasons[redact(str(entry.get("reason")))] += 1
                    if len(shown) < samples:
                        shown.append(
                            {
                                "what": redact(str(entry.get("what"))),
                                "reason": redact(str(entry.get("reason"))),
                                "field": entry.get("field"),
                                "record": redact(
                                    orjson.dumps(
                                        entry.get("record"), option=orjson.OPT_INDENT_2
                                    ).decode()
                                ),
                            }
                        )
        return {
            "run": shown_run(row),
            "records": lines,
            "reasons": [
                {"reason": reason, "count": count} for reason, count in reasons.most_common()
            ],
            "samples": shown,
            "downloadable": path is not None,
        }

    def quarantine_lines(self, run_id: str) -> Iterator[bytes] | None:
        """The quarantine file's lines, each redacted."""
        path = self._quarantine_path(run_id)
        if path is None:
            return None

        def lines() -> Iterator[bytes]:
            with path.open("rb") as handle:
                for raw in handle:
                    yield redact(raw.decode("utf-8", "replace")).encode()

        return lines()

    # -- datasets ------------------------------------------------------------------------

    def datasets(self) -> list[dict[str, Any]]:
        """Each configured dataset's versions, from the sink, with the records each
        version's run imported (from the ledger)."""
        config = self._config()
        from mpconnect.engine.lifecycle import open_sink

        dataset_ids = sorted({source.dataset_id for source in config.sources.values()})
        imported: dict[tuple[str, str], int] = {}
        for row in self.ledger.list_runs(limit=1_000_000):
            if row["version_id"] and row["status"] in ("succeeded", "superseded"):
                imported.setdefault((row["dataset_id"], row["version_id"]), row["imported"])
        result: list[dict[str, Any]] = []
        try:
            sink = open_sink(config, self.plugins, self.home)
        except MpconnectError as exc:
            return [
                {"dataset_id": d, "versions": [], "error": redact(str(exc))} for d in dataset_ids
            ]
        try:
            for dataset_id in dataset_ids:
                item: dict[str, Any] = {
                    "dataset_id": dataset_id,
                    "sink": sink.name,
                    "versioned": sink.versioned,
                    "versions": [],
                    "error": None,
                }
                if sink.versioned:
                    try:
                        versions = sink.list_versions(dataset_id)
                    except MpconnectError as exc:
                        item["error"] = redact(str(exc))
                        versions = []
                    item["versions"] = [
                        {
                            "version_id": v.version_id,
                            "state": version_state(v),
                            "live": v.is_live,
                            "readable": v.readable,
                            "created_at": v.created_at,
                            "records": imported.get((dataset_id, v.version_id)),
                        }
                        for v in versions
                    ]
                result.append(item)
        finally:
            sink.close()
        return result
