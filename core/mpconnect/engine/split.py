"""Splitting a spooled batch the sink refused as too large (HTTP 413) into two halves.

Each half becomes a batch of its own in the spool and the ledger, so it is acknowledged on
its own and a resumed run sends only the halves not yet acknowledged. A half's sequence
number is derived from its parent's, above every number the spool writer gives
(:data:`SPLIT_BASE`): the same split done again (after a crash) rewrites the same files.
"""

from __future__ import annotations

import orjson

from mpconnect.engine.ledger import BatchRef
from mpconnect.engine.spool import batch_path, write_batch_file

#: Sequence numbers of split halves start here; the spool writer's stay below.
SPLIT_BASE = 1 << 40
#: Bits of a half's place in its root batch's binary tree of splits (depth up to 15).
_NODE_BITS = 16


def half_seqs(seq: int) -> tuple[int, int]:
    """The sequence numbers of the two halves of batch ``seq``."""
    if seq < SPLIT_BASE:
        root, node = seq, 1
    else:
        root, node = divmod(seq - SPLIT_BASE, 1 << _NODE_BITS)
    child = 2 * node
    if child + 1 >= 1 << _NODE_BITS or root >= 1 << (40 - _NODE_BITS):
        raise ValueError(f"batch {seq} cannot be split further")
    first = SPLIT_BASE + (root << _NODE_BITS) + child
    return first, first + 1


def batch_name(seq: int) -> str:
    """A batch's name for people: its number, or for a half its root's number and its place
    (``7.a``: the first half of batch 7; ``7.ab``: the second half of that)."""
    if seq < SPLIT_BASE:
        return str(seq)
    root, node = divmod(seq - SPLIT_BASE, 1 << _NODE_BITS)
    return f"{root}." + "".join("ab"[int(bit)] for bit in bin(node)[3:])


def split_in_halves(batch: BatchRef, payload: bytes) -> list[BatchRef]:
    """Write the two halves of ``batch`` (whose JSON array is ``payload``) beside it."""
    records = orjson.loads(payload)
    half = len(records) // 2
    parts = []
    for seq, chunk in zip(half_seqs(batch.seq), (records[:half], records[half:]), strict=True):
        path = batch_path(batch.path.parent, seq, batch.kind)
        write_batch_file(path, orjson.dumps(chunk))
        parts.append(BatchRef(seq, batch.kind, len(chunk), path))
    return parts
