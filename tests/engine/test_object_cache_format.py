"""The source-object cache's row format and commit: content hashes stay the same across
releases and processes (a changed hash would make every object look changed), records read
back equal, and a commit leaves no pending rows of its extraction but keeps any other's."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from mpconnect.engine.cached_records import decode, encode
from mpconnect.engine.object_cache import CacheRow, SqliteObjectCache
from mpconnect.records import Event, Profile

EVENT = Event(
    "Airline Review",
    "reviewer-1",
    1707349506,
    "review-5",
    {"rating": 9, "tags": {"b", "a"}, "price": Decimal("1.50")},
)
#: The digest this release writes for EVENT; it must not change between releases.
EVENT_HASH = "6abc4c46281023d4d32000163bbc1130"


def test_content_hash_is_pinned_and_the_same_in_another_process() -> None:
    digest = encode(EVENT)[2].hex()
    code = (
        "from decimal import Decimal; from mpconnect.records import Event; "
        "from mpconnect.engine.cached_records import encode; "
        "print(encode(Event('Airline Review', 'reviewer-1', 1707349506, 'review-5', "
        "{'rating': 9, 'tags': {'b', 'a'}, 'price': Decimal('1.50')}))[2].hex())"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert digest == other == EVENT_HASH


def test_records_read_back_equal() -> None:
    profile = Profile("reviewer-1", {"joined": datetime(2024, 1, 2, tzinfo=UTC)}, object_id="r1")
    for record in (EVENT, profile):
        kind, data, _ = encode(record)
        assert decode(kind, data) == record


def _rows(count: int, start: int = 0) -> list[CacheRow]:
    rows = []
    for seq in range(start, start + count):
        kind, data, digest = encode(EVENT)
        rows.append(CacheRow("events", f"review-{seq}", seq, kind, digest, data))
    return rows


def test_commit_empties_its_pending_rows_and_keeps_another_extractions(tmp_path: Path) -> None:
    cache = SqliteObjectCache(tmp_path / "demo.sqlite3")
    cache.begin("run-b", full=True)
    cache.put("run-b", _rows(5))
    cache.stage("run-b")
    assert cache.commit("run-b")
    assert cache.stats() == {"objects": 5, "records": 5, "pending": 0}

    cache.begin("run-c", full=True)
    cache.put("run-c", _rows(3))
    cache.put("run-a", _rows(2, start=10))  # another extraction's rows, sorted before
    cache.put("run-d", _rows(1, start=20))  # and after
    cache.stage("run-c")
    assert cache.commit("run-c")
    assert cache.stats() == {"objects": 3, "records": 3, "pending": 3}
    cache.close()
