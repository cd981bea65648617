"""Events tied to no user, and the sinks that cannot take them.

Mixpanel's ``/import`` documents ``distinct_id: ""`` for an event tied to no user; the
Datasets API only says every record needs a ``distinct_id``. A sink whose
:attr:`~mpconnect.sink.Sink.accepts_unattributed_events` is False gets no such
event: each one is quarantined with :func:`unattributed_refusal`, counted, and kept.
"""

from __future__ import annotations

from mpconnect.errors import RecordError


def unattributed_refusal(sink_name: str) -> RecordError:
    """The error quarantining an event tied to no user that ``sink_name`` cannot take."""
    return RecordError(
        f"field 'distinct_id': an event tied to no user (distinct_id '') cannot go to the "
        f"{sink_name!r} sink: Mixpanel's Datasets API documents no empty distinct_id; "
        'use sink = "ingestion" (Mixpanel\'s /import takes them) or have the source skip '
        'them (Stripe: unattributed = "skip")',
        "distinct_id",
    )
