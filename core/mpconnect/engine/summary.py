"""What one run did, as shown at its end and kept in the run ledger."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from mpconnect.engine.wording import loaded, snapshot_name


@dataclass
class RunSummary:
    """The counts and outcome of one run of one source."""

    run_id: str
    source: str
    dataset_id: str
    sink: str
    version_id: str | None = None
    status: str = "running"
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    read: int = 0
    imported: int = 0
    quarantined: int = 0
    retries: int = 0
    batches: int = 0
    resumed: bool = False
    versioned: bool = True
    error: str | None = None
    quarantine_file: str | None = None
    #: Records the destination keeps once because an earlier record of the run had the
    #: same key (``$insert_id``; identical people updates in the embedded store).
    duplicates: int = 0
    #: Requests the sink answered 429 (rate limited), retried or not.
    throttled: int = 0
    #: Bytes of record JSON in the batches the sink accepted during this run.
    uploaded_bytes: int = 0
    #: The most frequent quarantine reasons, with their counts.
    quarantine_reasons: list[tuple[str, int]] = field(default_factory=list)
    #: ``"incremental"`` or ``"full"`` for a connector that reads incrementally, else None.
    sync: str | None = None
    #: Why a run of such a connector read everything (first run, --full-refresh, ...).
    sync_reason: str | None = None
    #: Source objects ``read``, ``changed``, ``deleted`` and ``cached`` (served from the
    #: source-object cache), for a connector that reads incrementally.
    objects: dict[str, int] | None = None

    @property
    def duration(self) -> float:
        """Seconds from start to end (or to now while running)."""
        return (self.ended_at or time.time()) - self.started_at

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict, with the duration."""
        data = asdict(self)
        data["duration"] = round(self.duration, 3)
        data["quarantine_reasons"] = [
            {"reason": reason, "count": count} for reason, count in self.quarantine_reasons
        ]
        return data

    def describe_sync(self) -> str:
        """Which kind of run it was: ``incremental run: read N objects (C changed, D
        deleted), M served from cache`` or ``full run (REASON)``."""
        if self.sync == "full":
            read = f": read {self.objects['read']:,} objects" if self.objects else ""
            return f"full run ({self.sync_reason or 'reading everything'}){read}"
        counts = self.objects or {}
        return (
            f"incremental run: read {counts.get('read', 0):,} objects "
            f"({counts.get('changed', 0):,} changed, {counts.get('deleted', 0):,} deleted), "
            f"{counts.get('cached', 0):,} served from cache"
        )

    def describe(self) -> str:
        """One paragraph for the end of a run."""
        rate = self.imported / self.duration if self.duration > 0 else 0.0
        lines = [
            f"{self.source}: {self.status}"
            + (
                f" (resumed {snapshot_name(self.versioned, self.version_id)})"
                if self.resumed
                else ""
            ),
            f"  records read {self.read:,}, imported {self.imported:,}, "
            f"quarantined {self.quarantined:,}, retries {self.retries:,}",
            (
                f"  dataset {self.dataset_id} version {self.version_id or '-'} via {self.sink}; "
                if self.versioned
                else f"  {loaded(False, None, self.batches)} via the "
                f"{self.sink} sink (no versions); "
            )
            + f"{self.duration:.1f} s ({rate:,.0f} records/s)",
        ]
        if self.sync:
            lines.append("  " + self.describe_sync())
        if self.duplicates:
            lines.append(
                f"  duplicates collapsed: {self.duplicates:,} (records sharing "
                "$insert_id, or identical people updates, kept once)"
            )
        if self.error:  # a superseded run did not fail: a newer version went live first
            lines.append(f"  {'note' if self.status == 'superseded' else 'error'}: {self.error}")
        if self.quarantined:
            if self.quarantine_reasons:
                lines.append("  top quarantine reasons:")
                lines.extend(
                    f"    {count:>9,}  {reason[:200]}" for reason, count in self.quarantine_reasons
                )
            if self.quarantine_file:
                lines.append(f"  quarantine file: {self.quarantine_file}")
        return "\n".join(lines)
