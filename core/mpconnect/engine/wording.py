"""What a run's messages call what it loads.

A Datasets sink (``datasets``, ``embedded``) loads each run into a dataset *version*:
created, published, live, pruned. A sink without versions (``ingestion``) sends a run's
records in *batches*; an unfinished run is resumed by the next run of its source, which
sends only the batches not yet acknowledged. The engine and the command line take their
words from here so that the two never mix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mpconnect.plugins import Plugins

_AGAIN = "(give --restart to extract the source again)"


def sink_is_versioned(plugins: Plugins, sink_name: str) -> bool:
    """Whether the sink ``sink_name`` loads dataset versions (True when it is not
    installed any more: the ledger's rows of old runs are read the usual way)."""
    entry = plugins.sinks.get(sink_name)
    return entry is None or entry.cls.versioned


def row_is_versioned(row: dict[str, Any]) -> bool:
    """Whether a run ledger row loaded a dataset version, read from the row alone (no
    plugin loaded): a sink without versions loads its extraction's spool, so the row's
    ``version_id`` is that spool's id; a version of a Datasets sink never is."""
    return row.get("version_id") is None or row.get("version_id") != row.get("spool_id")


def snapshot_name(versioned: bool, version_id: str | None) -> str:
    """``version 17962``, or ``run 20250101T020000-3fa85f64`` (the run whose extraction a
    sink without versions loads) when the sink has none."""
    return f"{'version' if versioned else 'run'} {version_id or '-'}"


def loaded(versioned: bool, version_id: str | None, batches: int) -> str:
    """What a run loaded, for one-line reports: its version, else its batches."""
    if versioned:
        return f"version {version_id or '-'}"
    return f"{batches:,} batch{'' if batches == 1 else 'es'} acknowledged"


def next_run_resumes(versioned: bool, version_id: str | None) -> str:
    """How a failed run's error ends when the next run of its source resumes it."""
    if versioned:
        return f"the next run resumes version {version_id} {_AGAIN}"
    return (
        f"the next run resumes run {version_id}, sending only its batches not yet "
        f"acknowledged {_AGAIN}"
    )


def resuming(versioned: bool, version_id: str) -> str:
    """The log line of a run that resumes an unfinished one (after ``SOURCE: ``)."""
    if versioned:
        return f"resuming version {version_id}"
    return f"resuming run {version_id}: sending only its batches not yet acknowledged"


def stopped_where(
    versioned: bool, *, published: bool, resumable: bool, started: bool
) -> tuple[str, str]:
    """Where a stopped run was, and what follows for the next run: the two halves of
    ``stopped on request WHERE; THEN``."""
    if published:
        return "while waiting until live", "the version is published and goes live by itself"
    if resumable:
        return (
            "before publishing" if versioned else "with batches still to send",
            "the next run resumes",
        )
    if not started:
        return (
            "before its version was created" if versioned else "before it sent anything",
            "nothing was loaded",
        )
    if versioned:
        return (
            "during extraction",
            "the next run starts a new version (a snapshot never mixes two extractions)",
        )
    return (
        "during extraction",
        "the next run reads the source again and sends every batch "
        "(each event's $insert_id makes Mixpanel keep it once)",
    )


def snapshot_columns(versioned: list[bool]) -> tuple[str, list[str]]:
    """The ``mpconnect runs`` table's header for the ledger's ``version_id``, and the
    further columns to show, given which rows' sinks have versions.

    ``VERSION`` when every row has one; ``RUN`` (the run whose extraction the row loaded:
    its own, or the one it resumed) plus ``BATCHES`` when none has; ``VERSION/RUN`` plus
    ``BATCHES`` when the history mixes sinks: one column per meaning, each row's ``SINK``
    saying which of the two its id is.
    """
    if all(versioned):
        return "VERSION", []
    return ("RUN" if not any(versioned) else "VERSION/RUN"), ["BATCHES"]
