"""What a run's quarantine says at its end: the top reasons, and whether it is over the
source's ``max_quarantined`` limit."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson

#: The default ``max_quarantined``: a run quarantining more than 1% of what it read fails.
DEFAULT_MAX_QUARANTINED = 0.01
UNLIMITED = "unlimited"
#: Distinct reasons tallied; further ones are counted together.
_MAX_DISTINCT = 10_000
_OTHER = "(other reasons)"


def top_reasons(path: Path, limit: int = 5) -> list[tuple[str, int]]:
    """Return the ``limit`` most frequent reasons of a quarantine file with their counts.

    An unreadable file or line is skipped: the summary is a guide, the file is the record.
    """
    counts: Counter[str] = Counter()
    try:
        with path.open("rb") as handle:
            for line in handle:
                try:
                    reason = orjson.loads(line).get("reason")
                except (orjson.JSONDecodeError, AttributeError):
                    continue
                reason = str(reason)
                if reason not in counts and len(counts) >= _MAX_DISTINCT:
                    reason = _OTHER
                counts[reason] += 1
    except OSError:
        return []
    return counts.most_common(limit)


def over_limit(count: int, read: int, limit: float | str, key: str) -> str | None:
    """Say why ``count`` quarantined records of ``read`` are over ``limit``, or None.

    :param limit: a count (1 or more), a fraction of the records read (under 1; 0 allows
        none), or ``"unlimited"``.
    :param key: the setting that gave the limit, named in the message.
    """
    if limit == UNLIMITED or isinstance(limit, str):
        return None
    allowed = limit if limit >= 1 else limit * max(read, 1)
    if count <= allowed:
        return None
    shown = (
        f"{limit:g}" if limit >= 1 or limit == 0 else f"{limit * 100:g}% of {read:,} records read"
    )
    return (
        f"{count:,} records quarantined, over the limit of {shown} ({key}; raise it, or "
        f'set it to "{UNLIMITED}" to publish whatever is quarantined)'
    )
