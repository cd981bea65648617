"""The spool writer's files and the SHA-256 it gives each batch from memory."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson

from mpconnect.engine.ledger import BatchRef
from mpconnect.engine.spool import SpoolWriter


def records(count: int) -> list[bytes]:
    return [orjson.dumps({"event": "e", "properties": {"n": n, "s": "é,]["}}) for n in range(count)]


def test_an_encoded_batch_is_one_json_array_of_its_records(tmp_path: Path) -> None:
    written: list[BatchRef] = []
    writer = SpoolWriter(tmp_path / "spool", 1000, None, written.append)
    writer.write_encoded("events", records(3))
    writer.write_encoded("events", [])

    first, empty = written
    assert orjson.loads(first.path.read_bytes()) == [orjson.loads(r) for r in records(3)]
    assert empty.path.read_bytes() == b"[]" and empty.count == 0
    assert first.digest is None  # not asked for


def test_the_digest_from_memory_is_the_sha256_of_the_file(tmp_path: Path) -> None:
    written: list[BatchRef] = []
    writer = SpoolWriter(tmp_path / "spool", 2, None, written.append, digest=True)
    writer.write_encoded("events", records(500))
    writer.write_encoded("people", records(1))
    writer.write("events", [{"n": n} for n in range(5)])  # split by max_records

    assert [batch.count for batch in written] == [500, 1, 2, 2, 1]
    for batch in written:
        assert batch.digest == hashlib.sha256(batch.path.read_bytes()).hexdigest()
    assert len({batch.digest for batch in written}) == len(written)


def test_a_digest_does_not_make_two_batch_refs_differ(tmp_path: Path) -> None:
    path = tmp_path / "0000001-events.json"
    assert BatchRef(1, "events", 3, path, "ab") == BatchRef(1, "events", 3, path)


def test_a_batch_in_memory_carries_the_bytes_its_file_would_hold(tmp_path: Path) -> None:
    on_disk: list[BatchRef] = []
    in_memory: list[BatchRef] = []
    SpoolWriter(tmp_path / "disk", 2, None, on_disk.append, digest=True).write_encoded(
        "events", records(50)
    )
    writer = SpoolWriter(
        tmp_path / "memory", 2, None, in_memory.append, digest=True, in_memory=True
    )
    writer.write_encoded("events", records(50))
    writer.write("people", [{"n": n} for n in range(3)])  # split by max_records

    batch = in_memory[0]
    assert batch.payload == on_disk[0].path.read_bytes()
    assert batch.digest == on_disk[0].digest
    assert [b.count for b in in_memory] == [50, 2, 1]
    assert [orjson.loads(b.payload or b"") for b in in_memory[1:]] == [
        [{"n": 0}, {"n": 1}],
        [{"n": 2}],
    ]
    assert list((tmp_path / "memory").iterdir()) == []  # no file written
    assert "payload" not in repr(batch)  # a log line naming the batch holds no records
