"""One run of one source → one dataset version: lock, create, extract, import, publish,
wait until live, prune. A run that dies after creating its version is resumed by the
next run of the source (same version, same spool, only unacknowledged batches sent).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from mpconnect.config import (
    Config,
    SourceConfig,
    configured_token,
    connector_settings,
    require_connector,
)
from mpconnect.connector import Connector, RunContext
from mpconnect.disk import private_dir
from mpconnect.engine.batching import DEFAULT_MAX_BATCH_BYTES, Batcher, batch_byte_limit
from mpconnect.engine.cleanup import remove_dead_spools
from mpconnect.engine.deadline import RunStop
from mpconnect.engine.duplicates import DuplicateCounter
from mpconnect.engine.ledger import BatchRef, ResumePoint, RunLedger, SqliteRunLedger
from mpconnect.engine.lock import FileSourceLock, SourceLock
from mpconnect.engine.odd_records import safe_describe, unencodable_field
from mpconnect.engine.phases import phase
from mpconnect.engine.progress import Progress
from mpconnect.engine.quarantine import QuarantineFile
from mpconnect.engine.quarantine_report import over_limit, top_reasons
from mpconnect.engine.resume_key import ResumeKey, installation_key, make_resume_key
from mpconnect.engine.shared_dataset import builtin_dataset_clash
from mpconnect.engine.spool import SpoolWriter, batch_is_whole, remove_spool
from mpconnect.engine.summary import RunSummary
from mpconnect.engine.throttled import counting_throttled
from mpconnect.engine.unattributed import unattributed_refusal
from mpconnect.engine.upload import Uploader
from mpconnect.engine.wording import (
    next_run_resumes,
    resuming,
    sink_is_versioned,
    snapshot_name,
    stopped_where,
)
from mpconnect.errors import (
    ApiError,
    ConfigError,
    MpconnectError,
    PluginError,
    RecordError,
    RunFailed,
)
from mpconnect.located import in_file
from mpconnect.paths import home_dir
from mpconnect.plugins import ConnectorEntry, Plugins, notify
from mpconnect.records import Event, Profile
from mpconnect.redact import redact
from mpconnect.sink import Sink, VersionInfo
from mpconnect.transport.retry import (
    RetryWaitStopped,
    call_with_retries,
    log_retry,
    retry_budget,
    stop_waits_on,
)

log = logging.getLogger("mpconnect.engine")


@dataclass
class RunOptions:
    """How to run: ``restart`` abandons an unfinished version instead of resuming it."""

    restart: bool = False
    concurrency: int | None = None
    max_quarantined: float | str | None = None
    progress: Progress | None = None
    stop: threading.Event | None = None


class _Interrupted(MpconnectError):
    """The run was asked to stop (SIGTERM, scheduler shutdown)."""


class Engine:
    """Runs sources: the one lifecycle every connector and sink shares.

    :param config: the loaded configuration.
    :param plugins: the loaded plugins (connectors, sinks, hooks).
    :param home: the data directory (default ``$MPCONNECT_HOME``).
    :param ledger: the run ledger (default: SQLite under ``home``).
    :param lock_factory: makes a source's lock (default: a file lock under ``home``).
    """

    def __init__(
        self,
        config: Config,
        plugins: Plugins,
        home: Path | None = None,
        ledger: RunLedger | None = None,
        lock_factory: Callable[[str, str], SourceLock] | None = None,
    ) -> None:
        self.config = config
        self.plugins = plugins
        self.home = home or home_dir()
        self.ledger = ledger or SqliteRunLedger(self.home / "ledger.sqlite3")
        self.lock_factory = lock_factory or (
            lambda source, run_id: FileSourceLock(self.home / "locks", source, run_id)
        )

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
                return _Run(self, source, entry.cls, settings, sink, run_id, options, key).execute()
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
        return _refusal(self.ledger, point, key)


def _refusal(
    ledger: RunLedger, point: ResumePoint, key: ResumeKey, restart: bool = False
) -> str | None:
    """Why ``point`` may not be resumed by a run under ``key``, from what is on this
    machine (None: it may, if the sink still has the version)."""
    if restart:
        return "--restart given"
    changes = key.changes_since(ResumeKey.loads(point.resume_key))
    if changes:
        return "; ".join(changes)
    if not point.extraction_done:
        return "its extraction did not finish (a snapshot never mixes two extractions)"
    if point.host != socket.gethostname():
        return "its spool is not on this machine"
    if not point.spool_dir.is_dir():
        return f"its spool {point.spool_dir} is gone"
    if not all(batch_is_whole(b) for b in ledger.unacked_batches(point.spool_id)):
        return "spooled batches are missing or damaged"
    return None


def check_sink(config: Config, plugins: Plugins) -> type[Sink]:
    """Check the ``[mixpanel]`` table as a run would, without opening the sink: the sink
    exists, no key is one it does not read, and a token is there if it needs one.

    :raises MpconnectError: naming the key and the fix.
    """
    where = config.path or "the configuration"
    try:
        entry = plugins.sink(config.mixpanel.sink)
    except MpconnectError as exc:
        raise ConfigError(f"{where}: mixpanel.sink: {exc}") from None
    unknown = sorted(set(config.mixpanel.model_extra or {}) - entry.cls.extra_settings)
    if unknown:
        known = ", ".join(sorted({*type(config.mixpanel).model_fields, *entry.cls.extra_settings}))
        raise ConfigError(
            f"{where}: mixpanel.{unknown[0]}: unknown key for the {entry.name!r} sink; "
            f"check its spelling (keys: {known})"
        )
    if not configured_token(config.mixpanel, entry.cls.default_token) and (
        not entry.cls.default_token
    ):
        raise ConfigError(
            f"{where}: mixpanel.project_token: the {entry.name!r} sink needs the project "
            'token; add project_token = "${MIXPANEL_PROJECT_TOKEN}" to [mixpanel]'
        )
    return entry.cls


def open_sink(config: Config, plugins: Plugins, home: Path) -> Sink:
    """Instantiate the configured sink after :func:`check_sink`; the sink's constructor
    checks the values of the keys it reads.

    :raises MpconnectError: naming the file, the key and the fix.
    """
    sink_cls = check_sink(config, plugins)
    try:
        return sink_cls(config.mixpanel, home)
    except ConfigError as exc:
        raise ConfigError(in_file(str(exc), config.path)) from None


def project_token(config: Config, sink: Sink) -> str:
    """The project token records carry: the configured one, else the sink's default."""
    return configured_token(config.mixpanel, sink.default_token) or sink.default_token or ""


class _Run:
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
        quarantine_path = self._quarantine_path(run_id)
        self.quarantine = QuarantineFile(quarantine_path, source.name)
        self.summary.quarantine_file = str(quarantine_path)
        self._count_lock = threading.Lock()
        self.duplicates = DuplicateCounter(source.name, full_key=sink.dedup_full_key)
        #: True while the version has a complete spool and is not published.
        self._resumable = False
        self._published = False

    def _quarantine_path(self, spool_id: str) -> Path:
        return self.engine.home / "quarantine" / self.source.name / f"{spool_id}.jsonl"

    # -- orchestration -------------------------------------------------------------------

    def _api(self, call: Callable[[], Any]) -> Any:
        """Call the sink, retrying 429, 5xx, timeouts and dropped connections."""
        settings = self.engine.config.engine

        def retrying(exc: BaseException, attempt: int, wait: float) -> None:
            self._count_retry()
            log_retry(
                log, self.source.name, exc, attempt, retry_budget(exc, settings.max_retries), wait
            )

        try:
            return call_with_retries(
                counting_throttled(call, self._count_throttled),
                max_retries=settings.max_retries,
                initial_wait=settings.retry_initial_wait,
                max_wait=settings.retry_max_wait,
                on_retry=retrying,
                stop=self.stop,
            )
        except RetryWaitStopped:
            raise self._halted() from None

    def _halted(self) -> MpconnectError:
        """The error that ends the run once its stop is set: interrupted on request, or
        failed when ``engine.max_run_time`` passed (the next run resumes what it can)."""
        where, then = stopped_where(
            self.sink.versioned,
            published=self._published,
            resumable=self._resumable,
            started=self.summary.version_id is not None,
        )
        if self.run_stop.timed_out:
            stopped = (
                f"stopped after engine.max_run_time ({self.run_stop.max_run_time:g} s) {where}"
            )
            return RunFailed(stopped if self._resumable else f"{stopped}; {then}")
        return _Interrupted(f"stopped on request {where}; {then}")

    def execute(self) -> RunSummary:
        summary = self.summary
        self.ledger.record_run(summary)
        resume: ResumePoint | None = None
        spool_dir: Path | None = None
        try:
            resume = self._resume_point()
            self.progress.start(self.source.name, resume.read if resume else None)
            spool_id, spool_dir = self._open_version(resume)
            self._load(spool_id, spool_dir, resume)
            newer = None
            if self.sink.versioned:
                self._publish()
                self._resumable = False
                self._published = True
                remove_spool(spool_dir)  # a published version is never resumed
                with phase(self.ledger, summary.run_id, "live"):
                    newer = self._wait_live()
                if newer is None:
                    with phase(self.ledger, summary.run_id, "prune"):
                        self._prune()
            summary.status = "succeeded"
            if newer is not None:
                summary.status, summary.error = "superseded", f"superseded by version {newer}"
            remove_spool(spool_dir)
        except _Interrupted as exc:
            summary.status, summary.error = "interrupted", str(exc)
            raise _failed(f"{self.source.name}: {exc}", summary) from exc
        except BaseException as exc:
            summary.status = "failed"
            summary.error = redact(_describe(exc))  # RunFailed's text too
            if self._resumable:
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
            summary.ended_at = time.time()
            summary.quarantined = self.quarantine.count
            summary.duplicates = self.duplicates.count
            self.quarantine.close()
            if summary.quarantined:
                summary.quarantine_reasons = top_reasons(self.quarantine.path)
            else:
                summary.quarantine_file = None
            self.progress.stop()
            if spool_dir is not None and not self._resumable:
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

    def _resume_point(self) -> ResumePoint | None:
        point = self.ledger.resume_point(self.source.name)
        if point is None:
            return None
        reason = _refusal(self.ledger, point, self.resume_key, self.options.restart)
        if (
            reason is None
            and self.sink.versioned
            and self._api(lambda: self.sink.get_version(self.source.dataset_id, point.version_id))
            is None
        ):
            reason = "the version no longer exists in the sink"
        if reason is None:
            return point
        self._abandon(point, reason)
        return None

    def _abandon(self, point: ResumePoint, reason: str) -> None:
        versioned = sink_is_versioned(self.plugins, point.sink or self.sink.name)
        log.warning(
            "%s: abandoning unfinished %s: %s",
            self.source.name,
            snapshot_name(versioned, point.version_id),
            reason,
        )
        if self.sink.versioned and point.target in (None, self.target):
            try:
                self._api(
                    lambda: self.sink.delete_version(self.source.dataset_id, point.version_id)
                )
            except MpconnectError as exc:
                log.warning(
                    "%s: could not delete abandoned version %s: %s",
                    self.source.name,
                    point.version_id,
                    exc,
                )
        self.ledger.set_status(point.run_id, "abandoned", f"abandoned: {reason}")
        if point.host == socket.gethostname():
            remove_spool(point.spool_dir)

    def _open_version(self, resume: ResumePoint | None) -> tuple[str, Path]:
        summary = self.summary
        if resume is not None:
            summary.version_id = resume.version_id
            summary.resumed = True
            spool_id, spool_dir = resume.spool_id, resume.spool_dir
            # One quarantine file per snapshot: the extraction's, whose count goes on.
            self.quarantine.path = self._quarantine_path(spool_id)
            self.quarantine.count = resume.quarantined
            self.duplicates.count = resume.duplicates
            summary.quarantine_file = str(self.quarantine.path)
            self.ledger.set_status(resume.run_id, "resumed", f"resumed by run {summary.run_id}")
            log.info("%s: %s", self.source.name, resuming(self.sink.versioned, resume.version_id))
        else:
            if self.sink.versioned:
                with phase(self.ledger, summary.run_id, "create"):
                    created = self._api(lambda: self.sink.create_version(self.source.dataset_id))
                summary.version_id = created.version_id
            else:
                summary.version_id = summary.run_id
            spool_id = summary.run_id
            spool_dir = self.engine.home / "spool" / spool_id
        self._resumable = resume is not None
        # A resumed spool stays complete, so a resume of this resume works too.
        self.ledger.record_run(
            summary,
            spool_id=spool_id,
            spool_dir=spool_dir,
            host=socket.gethostname(),
            pid=os.getpid(),
            target=self.target,
            extraction_done=resume is not None,
            resume_key=self.resume_key.dumps(),
        )
        notify(
            self.plugins,
            "version_created",
            log,
            source=summary.source,
            dataset_id=summary.dataset_id,
            version_id=summary.version_id,
            sink=self.sink.name,
        )
        return spool_id, spool_dir

    # -- extraction and upload -----------------------------------------------------------

    def _count_imported(self, imported: int) -> None:
        with self._count_lock:
            self.summary.imported += imported
            self.summary.batches += 1
            total = self.summary.imported
        self.progress.imported(total)

    def _count_collapsed(self, collapsed: int) -> None:
        with self._count_lock:
            self.duplicates.count += collapsed

    def _count_retry(self) -> None:
        with self._count_lock:
            self.summary.retries += 1

    def _count_throttled(self) -> None:
        with self._count_lock:
            self.summary.throttled += 1

    def _count_uploaded(self, size: int) -> None:
        with self._count_lock:
            self.summary.uploaded_bytes += size

    def _load(self, spool_id: str, spool_dir: Path, resume: ResumePoint | None) -> None:
        summary = self.summary
        settings = self.engine.config.engine
        uploader = Uploader(
            self.sink,
            self.ledger,
            spool_id=spool_id,
            dataset_id=self.source.dataset_id,
            version_id=summary.version_id or "",
            concurrency=self.options.concurrency or settings.concurrency,
            max_retries=settings.max_retries,
            initial_wait=settings.retry_initial_wait,
            max_wait=settings.retry_max_wait,
            quarantine=self.quarantine,
            stop=self.stop,
            on_imported=self._count_imported,
            on_retry=self._count_retry,
            on_collapsed=self._count_collapsed,
            on_throttled=self._count_throttled,
            on_uploaded=self._count_uploaded,
        )
        with phase(self.ledger, summary.run_id, "import"):
            try:
                if resume is not None:
                    summary.batches, summary.imported = self.ledger.acked_totals(spool_id)
                    summary.read = resume.read
                    self.progress.extracted(summary.read, self.quarantine.count)
                    self.progress.imported(summary.imported)
                    for batch in self.ledger.unacked_batches(spool_id):
                        uploader.submit(batch)
                else:
                    self._extract(spool_id, spool_dir, uploader)
            except BaseException:
                uploader.stopped.set()
                raise
            finally:
                uploader.finish()
            if uploader.failure is not None:
                raise uploader.failure
        if self.stop.is_set():
            raise self._halted()
        self._check_quarantine_limit()

    def _quarantine_source_object(self, what: str, reason: str, data: Any = None) -> None:
        """A connector's object that could not become a record: read, and quarantined."""
        self.summary.read += 1
        self.quarantine.add(what, reason, data)

    def _extract(self, spool_id: str, spool_dir: Path, uploader: Uploader) -> None:
        summary = self.summary

        def spooled(batch: BatchRef) -> None:
            self.ledger.add_batch(spool_id, batch)
            uploader.submit(batch)
            self.progress.extracted(summary.read, self.quarantine.count)

        writer = SpoolWriter(
            spool_dir,
            self.sink.max_batch_records,
            batch_byte_limit(self.engine.config.engine.max_batch_bytes, self.sink.max_batch_bytes),
            spooled,
        )
        ctx = RunContext(
            source=self.source.name,
            dataset_id=self.source.dataset_id,
            log=logging.getLogger(f"mpconnect.source.{self.source.name}"),
            state_dir=private_dir(self.engine.home / "state" / self.source.name),
            quarantine=self._quarantine_source_object,
            stop=self.stop,
            count_retry=lambda *_: self._count_retry(),
        )
        connector = self.connector_cls(self.settings)
        token = self.token
        transformers = [
            (self.plugins.pm.get_name(impl.plugin), impl.function)
            for impl in self.plugins.pm.hook.transform_record.get_hookimpls()
        ]
        try:
            # A connector's retry waits end on a stop.
            with stop_waits_on(self.stop), phase(self.ledger, summary.run_id, "extract"):
                for kind, records in (("events", connector.events), ("people", connector.people)):
                    self._drain(kind, records(ctx), writer, token, transformers)
        finally:
            connector.close()
        self.ledger.mark_extraction_done(
            summary.run_id, summary.read, self.quarantine.count, self.duplicates.count
        )
        self._resumable = True
        self.progress.extracted(summary.read, self.quarantine.count)

    def _drain(
        self,
        kind: str,
        records: Any,
        writer: SpoolWriter,
        token: str,
        transformers: list[tuple[str | None, Callable[..., Any]]],
    ) -> None:
        """Validate, convert and spool every record of one generator (the hot loop).

        Extraction goes on when an upload has failed: the complete spool lets the next
        run resume without reading the source again.
        """
        summary = self.summary
        quarantine = self.quarantine
        expected = Event if kind == "events" else Profile
        is_events = kind == "events"
        batcher = Batcher(
            writer,
            kind,
            max_records=writer.max_records,
            max_bytes=writer.max_bytes or DEFAULT_MAX_BATCH_BYTES,
            duplicates=self.duplicates if is_events else None,
        )
        refuse_unattributed = not self.sink.accepts_unattributed_events
        stop = self.stop
        lead = getattr(self.sink, "future_leeway", None)
        latest = None if lead is None else int(time.time()) + lead
        in_connector = True
        try:
            for record in records:
                in_connector = False
                summary.read += 1
                if type(record) is not expected and not isinstance(record, expected):
                    raise PluginError(
                        f"connector {self.connector_cls.name!r} yielded {record!r} from "
                        f"{kind}(); expected mpconnect.{expected.__name__}"
                    )
                try:
                    if transformers:
                        self._transform(record, transformers)
                    if refuse_unattributed and isinstance(record, Event) and record.unattributed:
                        raise unattributed_refusal(self.sink.name)
                    converted = record.to_mixpanel(token, latest)
                except RecordError as exc:
                    quarantine.add(safe_describe(record), str(exc), _record_data(record), exc.field)
                    in_connector = True
                    continue
                except MpconnectError:
                    raise
                except Exception as exc:  # a value whose own methods fail: still quarantined
                    quarantine.add(
                        safe_describe(record),
                        f"cannot be converted: {type(exc).__name__}: {exc}",
                        _record_data(record),
                    )
                    in_connector = True
                    continue
                if is_events:
                    self._batch(batcher, converted)
                else:
                    for update in converted:
                        self._batch(batcher, update)
                if batcher.pending == 0:  # a batch was just spooled
                    if lead is not None:
                        latest = int(time.time()) + lead
                    if stop.is_set():
                        raise self._halted()
                in_connector = True
        except RetryWaitStopped:
            raise self._halted() from None
        except MpconnectError:
            raise
        except Exception as exc:
            if not in_connector:
                raise
            raise PluginError(
                f"connector {self.connector_cls.name!r} failed while reading {kind}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        batcher.flush()

    def _batch(self, batcher: Batcher, record: Any) -> None:
        """Add a converted record to its batch; one that cannot be encoded (an integer
        beyond 64 bits, say) or is over the per-record size goes to quarantine."""
        refused = batcher.add(record)
        if refused is not None:
            data = record if refused.encodable else {"repr": repr(record)[:2000]}
            self.quarantine.add(
                _name_converted(batcher.kind, record),
                refused.reason,
                data,
                None if refused.encodable else unencodable_field(record),
            )

    def _transform(
        self, record: Event | Profile, transformers: list[tuple[str | None, Callable[..., Any]]]
    ) -> None:
        for plugin_name, transform in transformers:
            try:
                transform(record=record, source=self.source.name)
            except RecordError:
                raise
            except Exception as exc:
                raise PluginError(
                    f"plugin {plugin_name!r} raised in transform_record: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc

    def _check_quarantine_limit(self) -> None:
        limit = self.options.max_quarantined
        key = "--max-quarantined"
        if limit is None:
            limit, key = self.source.max_quarantined, f"sources.{self.source.name}.max_quarantined"
        problem = over_limit(self.quarantine.count, self.summary.read, limit, key)
        if problem:
            raise RunFailed(f"{problem}; not publishing (see {self.quarantine.path})")

    # -- publish, live, prune ------------------------------------------------------------

    def _publish(self) -> None:
        summary = self.summary
        self.progress.stage(f"publishing version {summary.version_id}")
        with phase(self.ledger, summary.run_id, "publish"):
            self._api(lambda: self.sink.publish(self.source.dataset_id, summary.version_id or ""))
        self.ledger.mark_published(summary.run_id)
        notify(
            self.plugins,
            "version_published",
            log,
            source=summary.source,
            dataset_id=summary.dataset_id,
            version_id=summary.version_id,
            summary=summary,
        )

    def _wait_live(self) -> str | None:
        """Wait until the version is live; return the id of a newer live version that
        superseded it instead (another run loads the same dataset), or None."""
        summary = self.summary
        deadline = time.monotonic() + self.engine.config.engine.live_timeout
        wait = 0.2
        self.progress.stage(f"waiting until version {summary.version_id} is live")
        while True:
            versions = self._api(lambda: self.sink.list_versions(self.source.dataset_id))
            newer = _newer_live_version(versions, summary.version_id or "")
            if newer is not None:
                log.warning(
                    "%s: version %s was superseded by version %s before it went "
                    "live: another run loads dataset %s; not pruning",
                    self.source.name,
                    summary.version_id,
                    newer,
                    summary.dataset_id,
                )
                return newer
            if any(v.version_id == summary.version_id and v.is_live for v in versions):
                break
            if time.monotonic() + wait > deadline:
                raise RunFailed(
                    f"version {summary.version_id} was published but is not live after "
                    f"{self.engine.config.engine.live_timeout:.0f} s (engine.live_timeout)"
                )
            if self.stop.wait(wait):
                raise self._halted()
            wait = min(wait * 2, 10.0)
        notify(
            self.plugins,
            "version_live",
            log,
            source=summary.source,
            dataset_id=summary.dataset_id,
            version_id=summary.version_id,
        )
        return None

    def _prune(self) -> None:
        """Delete versions older than the live one: unreadable ones (left by failed runs or
        a lost answer to a create; never one the ledger says a run is writing) and readable
        ones beyond ``keep_versions``.

        The version is live already, so a failure here is a warning, not a failed run.
        """
        try:
            versions = self._api(lambda: self.sink.list_versions(self.source.dataset_id))
        except MpconnectError as exc:
            log.warning("%s: not pruning: %s", self.source.name, exc)
            return
        live_index = next((i for i, v in enumerate(versions) if v.is_live), None)
        if live_index is None:
            return
        older = versions[live_index + 1 :]
        readable = [v for v in older if v.readable]
        writing = self.ledger.versions_being_written(self.source.dataset_id)
        orphans = [v for v in older if not v.readable and v.version_id not in writing]
        doomed = orphans + readable[self.source.keep_versions - 1 :]
        for version in doomed:
            self.progress.stage(f"pruning version {version.version_id}")
            try:
                self._api(
                    partial(self.sink.delete_version, self.source.dataset_id, version.version_id)
                )
            except ApiError as exc:
                if exc.status != 404:  # 404: already gone (a retried delete)
                    log.warning(
                        "%s: could not prune version %s: %s",
                        self.source.name,
                        version.version_id,
                        exc,
                    )


def _newer_live_version(versions: list[VersionInfo], ours: str) -> str | None:
    """The live version listed before ``ours`` (lists are newest first), if any."""
    newer_live = None
    for version in versions:
        if version.version_id == ours:
            return newer_live
        if version.is_live:
            newer_live = version.version_id
    return None  # ours is not listed: nothing to compare it with


def _failed(message: str, summary: RunSummary) -> RunFailed:
    """A RunFailed carrying the run's summary (completed as the run ends) for the CLI."""
    error = RunFailed(message)
    error.summary = summary  # type: ignore[attr-defined]
    return error


def _name_converted(kind: str, record: dict[str, Any]) -> str:
    if kind == "events":
        properties = record.get("properties", {})
        return (
            f"event {record.get('event')!r} ($insert_id {properties.get('$insert_id')}, "
            f"distinct_id {properties.get('distinct_id')!r})"
        )
    return f"profile (distinct_id {record.get('$distinct_id')!r})"


def _record_data(record: Event | Profile) -> dict[str, Any]:
    fields = record.__slots__
    return {name: getattr(record, name) for name in fields}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, MpconnectError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted at once (a second stop request, or Ctrl-C)"
    return f"{type(exc).__name__}: {exc}"
