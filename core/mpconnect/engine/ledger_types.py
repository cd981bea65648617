"""The run ledger's interface (:class:`RunLedger`) and the records it passes around;
:mod:`mpconnect.engine.ledger` implements it in SQLite and re-exports these names."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpconnect.engine.summary import RunSummary

#: Statuses of a run that did not finish its version and may leave it resumable.
UNFINISHED = ("running", "failed", "interrupted")
#: How the status of a run its connector paused starts: ``paused: REASON``.
PAUSED = "paused: "


def paused_status(reason: str) -> str:
    """The status of a run its connector paused for ``reason``."""
    return PAUSED + reason


def may_resume(status: str, extraction_done: bool) -> bool:
    """True when a run that ended with ``status`` may have left its version for the next
    run: one of :data:`UNFINISHED`, or ``paused: REASON`` with its extraction planned (a
    partitioned run keeps its version when its connector pauses it; an unpartitioned one
    deletes it)."""
    return status in UNFINISHED or (status.startswith(PAUSED) and extraction_done)


@dataclass(frozen=True)
class BatchRef:
    """One spooled batch: its sequence number, kind, record count and file (or, for a
    batch held in memory, the file it would have)."""

    seq: int
    kind: str
    count: int
    path: Path
    #: The SHA-256 of the file's bytes (hex), when the spool writer was asked for it: taken
    #: from the bytes in memory as they were written, never read back.
    digest: str | None = field(default=None, compare=False)
    #: The batch's bytes when it is handed to the upload threads in memory instead of in a
    #: file (see :class:`~mpconnect.engine.spool.SpoolWriter`'s ``in_memory``).
    payload: bytes | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ResumePoint:
    """An unfinished version a new run of the source may resume."""

    run_id: str
    spool_id: str
    version_id: str
    spool_dir: Path
    host: str
    extraction_done: bool
    read: int
    quarantined: int
    target: str | None = None
    #: What shaped the spool (:class:`mpconnect.engine.resume_key.ResumeKey`, as JSON).
    resume_key: str | None = None
    duplicates: int = 0
    #: The sink it was loading into (None: read from an older ledger).
    sink: str | None = None


class RunLedger(ABC):
    """Where runs and batch checkpoints are recorded."""

    @abstractmethod
    def record_run(
        self,
        summary: RunSummary,
        *,
        spool_id: str | None = None,
        spool_dir: Path | None = None,
        host: str = "",
        pid: int = 0,
        target: str | None = None,
        extraction_done: bool = False,
        resume_key: str | None = None,
    ) -> None:
        """Insert or update a run's row from its summary; with ``spool_id``, also where its
        spool is, what it loads into (``target``), what shaped it (``resume_key``) and
        whether the spool is complete."""

    @abstractmethod
    def mark_extraction_done(
        self, run_id: str, read: int, quarantined: int, duplicates: int = 0
    ) -> None:
        """Record that the run's extraction finished: its spool is complete."""

    @abstractmethod
    def mark_published(self, run_id: str) -> None:
        """Record that the run's version was published."""

    @abstractmethod
    def set_status(self, run_id: str, status: str, error: str | None = None) -> None:
        """Change a run's status (for example to ``abandoned``)."""

    @abstractmethod
    def add_batch(self, spool_id: str, batch: BatchRef) -> None:
        """Record a spooled batch, not yet acknowledged."""

    @abstractmethod
    def ack_batch(self, spool_id: str, seq: int, imported: int) -> None:
        """Checkpoint: the sink acknowledged batch ``seq``."""

    def split_batch(self, spool_id: str, seq: int, parts: list[BatchRef]) -> None:
        """Replace unacknowledged batch ``seq`` by ``parts`` (its records, split because
        the sink refused the batch as too large); each part is then acknowledged on its own.

        This default records the parts, then acknowledges ``seq`` with nothing imported;
        a ledger that can do both in one transaction should.
        """
        for part in parts:
            self.add_batch(spool_id, part)
        self.ack_batch(spool_id, seq, 0)

    def record_phase(
        self,
        run_id: str,
        phase: str,
        started_at: float,
        ended_at: float | None = None,
        ok: bool | None = None,
    ) -> None:
        """Record when a phase of a run (create, extract, import, publish, live, prune)
        began and, once over, when it ended and whether it succeeded. This default keeps
        nothing; the status page then shows no timeline."""

    def phases(self, run_id: str) -> list[dict[str, Any]]:
        """Return the run's phases in the order they began (``phase``, ``started_at``,
        ``ended_at``, ``ok``)."""
        return []

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """Return one run as :meth:`list_runs` shows it, or None."""
        return next((run for run in self.list_runs(limit=100_000) if run["run_id"] == run_id), None)

    def acks(self, spool_id: str, since: float = 0.0) -> list[tuple[float, int]]:
        """Return (time, records imported) of each batch of the spool acknowledged at or
        after ``since``, oldest first: the run's throughput over time."""
        return []

    @abstractmethod
    def unacked_batches(self, spool_id: str) -> list[BatchRef]:
        """Return the spool's batches not yet acknowledged, in order."""

    @abstractmethod
    def acked_totals(self, spool_id: str) -> tuple[int, int]:
        """Return (acknowledged batches, records imported by them)."""

    @abstractmethod
    def resume_point(self, source: str) -> ResumePoint | None:
        """Return the source's latest unfinished, unpublished version, if any."""

    @abstractmethod
    def list_runs(self, source: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Return runs, newest first."""

    @abstractmethod
    def versions_being_written(self, dataset_id: str) -> set[str]:
        """Return the versions of ``dataset_id`` whose runs are still running."""
