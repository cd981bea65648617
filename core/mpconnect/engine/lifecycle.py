"""One run of one source → one dataset version: lock, create, extract, import, publish,
wait until live, prune. A run that dies after creating its version is resumed by the
next run of the source (same version, same spool, only unacknowledged batches sent).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from mpconnect.config import (
    Config,
    SourceConfig,
    connector_settings,
    require_connector,
)
from mpconnect.connector import Connector, Partition
from mpconnect.engine.cleanup import remove_dead_spools
from mpconnect.engine.deadline import RunStop
from mpconnect.engine.duplicates import DuplicateCounter
from mpconnect.engine.extract import load
from mpconnect.engine.incremental import IncrementalRun, end_paused, state_file
from mpconnect.engine.ledger import ResumePoint, RunLedger, SqliteRunLedger
from mpconnect.engine.lock import FileSourceLock, SourceLock
from mpconnect.engine.object_cache import ObjectCache, SqliteObjectCache, cache_path
from mpconnect.engine.partitions import run_partitioned
from mpconnect.engine.phases import phase
from mpconnect.engine.progress import Progress
from mpconnect.engine.publish import prune, publish, wait_live
from mpconnect.engine.quarantine import QuarantineFile
from mpconnect.engine.quarantine_report import over_limit, top_reasons
from mpconnect.engine.resume import open_version, refusal, resume_point
from mpconnect.engine.resume_key import ResumeKey, installation_key, make_resume_key
from mpconnect.engine.shared_dataset import builtin_dataset_clash
from mpconnect.engine.sink_setup import check_sink, open_sink, project_token
from mpconnect.engine.spool import remove_spool
from mpconnect.engine.state import SqliteStateStore, StateStore
from mpconnect.engine.summary import RunSummary
from mpconnect.engine.throttled import counting_throttled
from mpconnect.engine.wording import (
    next_run_resumes,
    stopped_where,
)
from mpconnect.errors import (
    MpconnectError,
    RunFailed,
)
from mpconnect.paths import home_dir
from mpconnect.plugins import ConnectorEntry, Plugins, notify
from mpconnect.redact import redact
from mpconnect.sink import Sink
from mpconnect.transport.retry import (
    RetryWaitStopped,
    call_with_retries,
    log_retry,
    retry_budget,
)

log = logging.getLogger("mpconnect.engine")

__all__ = ["Engine", "Run", "RunOptions", "check_sink", "open_sink", "project_token"]


@dataclass
class RunOptions:
    """How to run: ``restart`` abandons an unfinished version instead of resuming it;
    ``full_refresh`` reads everything and rebuilds the source-object cache."""

    restart: bool = False
    full_refresh: bool = False
    concurrency: int | None = None
    max_quarantined: float | str | None = None
    progress: Progress | None = None
    stop: threading.Event | None = None
    processes: int | None = None  # partitions read at once; None: [engine] processes


class _Interrupted(MpconnectError):
    """The run was asked to stop (SIGTERM, scheduler shutdown)."""


class Engine:
    """Runs sources: the one lifecycle every connector and sink shares.

    :param config: the loaded configuration.
    :param plugins: the loaded plugins (connectors, sinks, hooks).
    :param home: the data directory (default ``$MPCONNECT_HOME``).
    :param ledger: the run ledger (default: SQLite under ``home``).
    :param lock_factory: makes a source's lock (default: a file lock under ``home``).
    :param state_store: the incremental runs' state (default: SQLite under ``home``).
    :param cache_factory: makes a source's object cache (default: SQLite under ``home``).
    """

    def __init__(
        self,
        config: Config,
        plugins: Plugins,
        home: Path | None = None,
        ledger: RunLedger | None = None,
        lock_factory: Callable[[str, str], SourceLock] | None = None,
        state_store: StateStore | None = None,
        cache_factory: Callable[[str], ObjectCache] | None = None,
    ) -> None:
        self.config = config
        self.plugins = plugins
        self.home = home or home_dir()
        self.ledger = ledger or SqliteRunLedger(self.home / "ledger.sqlite3")
        self.lock_factory = lock_factory or (
            lambda source, run_id: FileSourceLock(self.home / "locks", source, run_id)
        )
        self._state_store = state_store
        self.cache_factory = cache_factory or (
            lambda source: SqliteObjectCache(cache_path(self.home, source))
        )

    def state_store(self) -> StateStore:
        """The incremental runs' state store (opened on first use)."""
        if self._state_store is None:
            self._state_store = SqliteStateStore(state_file(self.home))
        return self._state_store

    def object_cache(self, source: str) -> ObjectCache:
        """A new handle on the source's object cache."""
        return self.cache_factory(source)

    # -- sinks ---------------------------------------------------------------------------

    def make_sink(self) -> Sink:
        """Instantiate the configured sink (see :func:`open_sink`)."""
        return open_sink(self.config, self.plugins, self.home)

    def token(self, sink: Sink) -> str:
        """The project token records carry."""
        return project_token(self.config, sink)

    # -- the run -------------------------------------------------------------------------

    def run(self, source_name: str, options: RunOptions | None = None) -> RunSummary:
        """Run one source to a live dataset version and return the summary.

        :raises RunLocked: when the source is already running.
        :raises RunFailed: when the run stopped; its ledger row (``mpconnect runs``) has the
            counts and the reason.
        """
        options = options or RunOptions()
        source = self.config.source(source_name)
        require_connector(self.config, source, self.plugins.connectors)
        entry = self.plugins.connector(source.connector)
        settings = connector_settings(self.config, source, entry.cls.Settings)
        run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        lock = self.lock_factory(source.name, run_id)
        lock.acquire()
        try:
            remove_dead_spools(self.ledger, source.name)
            sink = self.make_sink()
            try:
                clash = builtin_dataset_clash(self.config, source) if sink.versioned else None
                if clash:
                    log.warning("%s: %s", source.name, clash)
                key = self.resume_key(source, entry, settings, sink)
                return Run(self, source, entry.cls, settings, sink, run_id, options, key).execute()
            finally:
                sink.close()
        finally:
            lock.release()

    def resume_key(
        self, source: SourceConfig, entry: ConnectorEntry, settings: Any, sink: Sink
    ) -> ResumeKey:
        """What shapes a run's snapshot: an unfinished version made under another key is
        never resumed (see :mod:`mpconnect.engine.resume_key`)."""
        transforms = [
            str(self.plugins.pm.get_name(impl.plugin))
            for impl in self.plugins.pm.hook.transform_record.get_hookimpls()
        ]
        return make_resume_key(
            installation_key(self.home),
            connector=entry.name,
            connector_version=entry.cls.version or entry.provider.version,
            settings=settings,
            dataset_id=source.dataset_id,
            sink=sink.name,
            destination=sink.describe(),
            token=self.token(sink),
            transforms=transforms,
        )

    def resume_refusal(self, source_name: str) -> str | None:
        """Say why a run of the source started now would not resume an unfinished version
        (None: it would). Looks at the ledger and the spool, never at the sink.
        """
        point = self.ledger.resume_point(source_name)
        if point is None:
            return "it left no unfinished, unpublished version"
        try:
            source = self.config.source(source_name)
            require_connector(self.config, source, self.plugins.connectors)
            entry = self.plugins.connector(source.connector)
            settings = connector_settings(self.config, source, entry.cls.Settings)
            sink = self.make_sink()
            try:
                key = self.resume_key(source, entry, settings, sink)
            finally:
                sink.close()
        except MpconnectError as exc:
            return str(exc)
        return refusal(self.ledger, point, key)


class Run:
    """The state of one run in progress."""

    def __init__(
        self,
        engine: Engine,
        source: SourceConfig,
        connector_cls: type[Connector],
        settings: Any,
        sink: Sink,
        run_id: str,
        options: RunOptions,
        resume_key: ResumeKey,
    ) -> None:
        self.engine = engine
        self.ledger = engine.ledger
        self.plugins = engine.plugins
        self.source = source
        self.connector_cls = connector_cls
        self.settings = settings
        self.sink = sink
        self.options = options
        self.progress = options.progress or Progress()
        self.run_stop = RunStop(options.stop, engine.config.engine.max_run_time)
        self.stop = self.run_stop.event
        self.resume_key = resume_key
        self.token = engine.token(sink)
        #: What this run loads into; a spool made for another target is never resumed.
        self.target = hashlib.sha256(
            orjson.dumps([sink.name, sink.describe(), source.dataset_id, self.token])
        ).hexdigest()[:16]
        self.summary = RunSummary(
            run_id=run_id,
            source=source.name,
            dataset_id=source.dataset_id,
            sink=sink.name,
            versioned=sink.versioned,
        )
        quarantine_path = self.quarantine_path(run_id)
        self.quarantine = QuarantineFile(quarantine_path, source.name)
        self.summary.quarantine_file = str(quarantine_path)
        self._count_lock = threading.Lock()
        self.duplicates = DuplicateCounter(source.name, full_key=sink.dedup_full_key)
        #: True while the version has a complete spool and is not published.
        self.resumable = False
        self.published = False
        self.partition: Partition | None = None  # an unpartitioned run's ctx.partition
        self.incremental = IncrementalRun(
            self, connector_cls.incremental and source.sync == "incremental"
        )
        #: Set when the connector paused the run (:class:`mpconnect.SourcePaused`).
        self.paused: str | None = None

    def quarantine_path(self, spool_id: str) -> Path:
        return self.engine.home / "quarantine" / self.source.name / f"{spool_id}.jsonl"

    # -- orchestration -------------------------------------------------------------------

    def api(self, call: Callable[[], Any]) -> Any:
        """Call the sink, retrying 429, 5xx, timeouts and dropped connections."""
        settings = self.engine.config.engine

        def retrying(exc: BaseException, attempt: int, wait: float) -> None:
            self.count_retry()
            log_retry(
                log, self.source.name, exc, attempt, retry_budget(exc, settings.max_retries), wait
            )

        try:
            return call_with_retries(
                counting_throttled(call, self.count_throttled),
                max_retries=settings.max_retries,
                initial_wait=settings.retry_initial_wait,
                max_wait=settings.retry_max_wait,
                on_retry=retrying,
                stop=self.stop,
            )
        except RetryWaitStopped:
            raise self.halted() from None

    def halted(self) -> MpconnectError:
        """The error that ends the run once its stop is set: interrupted on request, or
        failed when ``engine.max_run_time`` passed (the next run resumes what it can)."""
        where, then = stopped_where(
            self.sink.versioned,
            published=self.published,
            resumable=self.resumable,
            started=self.summary.version_id is not None,
        )
        if self.run_stop.timed_out:
            stopped = (
                f"stopped after engine.max_run_time ({self.run_stop.max_run_time:g} s) {where}"
            )
            return RunFailed(stopped if self.resumable else f"{stopped}; {then}")
        return _Interrupted(f"stopped on request {where}; {then}")

    def execute(self) -> RunSummary:
        summary = self.summary
        self.ledger.record_run(summary)
        resume: ResumePoint | None = None
        spool_dir: Path | None = None
        try:
            resume = resume_point(self)
            if resume is None:
                self.progress.start(self.source.name)
            else:
                acknowledged = self.ledger.acked_totals(resume.spool_id)[1]
                self.progress.start(self.source.name, resume.read, acknowledged)
            spool_id, spool_dir = open_version(self, resume)
            if not run_partitioned(self, spool_id, spool_dir, resume):
                load(self, spool_id, spool_dir, resume)
            newer = None
            if self.paused is not None:
                if not self.resumable:  # a partitioned run keeps its version for the next
                    end_paused(self, spool_id)
            elif self.sink.versioned:
                publish(self)
                self.resumable = False
                self.published = True
                remove_spool(spool_dir)  # a published version is never resumed
                with phase(self.ledger, summary.run_id, "live"):
                    newer = wait_live(self)
                if newer is None:
                    with phase(self.ledger, summary.run_id, "prune"):
                        prune(self)
            if self.paused is None:
                self.incremental.commit(spool_id)
                summary.status = "succeeded"
            if newer is not None:
                summary.status, summary.error = "superseded", f"superseded by version {newer}"
            if self.paused is None or not self.resumable:
                remove_spool(spool_dir)
        except _Interrupted as exc:
            summary.status, summary.error = "interrupted", str(exc)
            raise _failed(f"{self.source.name}: {exc}", summary) from exc
        except BaseException as exc:
            summary.status = "failed"
            summary.error = redact(_describe(exc))  # RunFailed's text too
            if self.resumable:
                summary.error += "; " + next_run_resumes(self.sink.versioned, summary.version_id)
            notify(
                self.plugins,
                "run_failed",
                log,
                source=summary.source,
                dataset_id=summary.dataset_id,
                version_id=summary.version_id,
                error=exc,
            )
            if isinstance(exc, MpconnectError | KeyboardInterrupt):
                raise _failed(f"{self.source.name}: {summary.error}", summary) from exc
            raise
        finally:
            self.run_stop.close()
            self.incremental.close()
            summary.ended_at = time.time()
            summary.quarantined = self.quarantine.count
            summary.duplicates = self.duplicates.count
            self.quarantine.close()
            if summary.quarantined:
                summary.quarantine_reasons = top_reasons(self.quarantine.path)
            else:
                summary.quarantine_file = None
            self.progress.stop()
            if spool_dir is not None and not self.resumable:
                remove_spool(spool_dir)  # an unfinished extraction is never resumed
            try:
                self.ledger.record_run(summary)
            except MpconnectError as exc:
                if summary.status == "succeeded":
                    raise
                log.warning(
                    "%s: could not record the run's end in the ledger: %s", self.source.name, exc
                )
        return summary

    # -- counts kept by the upload workers and the extraction ----------------------------

    def count_imported(self, imported: int) -> None:
        with self._count_lock:
            self.summary.imported += imported
            self.summary.batches += 1
            total = self.summary.imported
        self.progress.imported(total)

    def count_collapsed(self, collapsed: int) -> None:
        self.duplicates.add(collapsed)

    def count_retry(self) -> None:
        with self._count_lock:
            self.summary.retries += 1

    def count_throttled(self) -> None:
        with self._count_lock:
            self.summary.throttled += 1

    def count_uploaded(self, size: int) -> None:
        with self._count_lock:
            self.summary.uploaded_bytes += size

    def check_quarantine_limit(self) -> None:
        limit = self.options.max_quarantined
        key = "--max-quarantined"
        if limit is None:
            limit, key = self.source.max_quarantined, f"sources.{self.source.name}.max_quarantined"
        problem = over_limit(self.quarantine.count, self.summary.read, limit, key)
        if problem:
            raise RunFailed(f"{problem}; not publishing (see {self.quarantine.path})")


def _failed(message: str, summary: RunSummary) -> RunFailed:
    """A RunFailed carrying the run's summary (completed as the run ends) for the CLI."""
    error = RunFailed(message)
    error.summary = summary  # type: ignore[attr-defined]
    return error


def _describe(exc: BaseException) -> str:
    if isinstance(exc, MpconnectError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted at once (a second stop request, or Ctrl-C)"
    return f"{type(exc).__name__}: {exc}"
