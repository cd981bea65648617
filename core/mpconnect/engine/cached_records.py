"""A connector's records as the source-object cache keeps them.

A record is kept as the connector yielded it, before any ``transform_record`` hook, so a
cached record becomes the very same :class:`~mpconnect.records.Event` or
:class:`~mpconnect.records.Profile` again and goes through transform, validation and
encoding exactly as a freshly read one. The data is a pickle of the record's fields (it
round-trips datetimes, Decimals, sets... exactly); the cache file is private to the user
running mpconnect, like the spool. The content hash is a BLAKE2b digest of a canonical
JSON form (sorted keys; sets sorted), so equal content gives an equal hash on every run.
"""

from __future__ import annotations

import hashlib
import operator
import pickle
from typing import Any

import orjson

from mpconnect.engine.object_cache import CacheDamaged, CacheRow
from mpconnect.records import Event, Profile

EVENT_STREAM = "events"
PEOPLE_STREAM = "people"
_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
_event_fields = operator.attrgetter(*Event.__slots__)
_profile_fields = operator.attrgetter(*Profile.__slots__)
#: Copied for each hash: cheaper than a new object with its parameters, same digest.
_HASH = hashlib.blake2b(digest_size=16)
_PROTOCOL = pickle.HIGHEST_PROTOCOL
_pickle = pickle.dumps
_json = orjson.dumps
_new_tuple = tuple.__new__  # a CacheRow without its Python-level __new__


def _canonical(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(map(repr, value))
    return repr(value)


def encode(record: Event | Profile) -> tuple[str, bytes, bytes]:
    """``(kind, data, hash)`` of a record: kind ``"e"`` or ``"p"``."""
    row = cache_row(record, 0)
    return row.kind, row.data, row.hash


def cache_row(record: Event | Profile, seq: int) -> CacheRow:
    """The cache row of a record. Its stream is ``record.stream``, by default ``events`` or
    ``people``; its key the record's ``object_id`` or (for a record without one) its
    content hash, so that an unchanged record keeps its key."""
    if isinstance(record, Event):
        kind, fields, stream = "e", _event_fields(record), record.stream or EVENT_STREAM
    else:
        kind, fields, stream = "p", _profile_fields(record), record.stream or PEOPLE_STREAM
    data = _pickle(fields, _PROTOCOL)
    try:
        canonical = _json(fields, default=_canonical, option=_OPTIONS)
    except TypeError:
        canonical = data
    hasher = _HASH.copy()
    hasher.update(canonical)
    digest = hasher.digest()
    object_id = record.object_id
    if object_id is None or object_id == "":
        key = "#" + digest.hex()
    else:
        key = object_id if type(object_id) is str else str(object_id)
    return _new_tuple(CacheRow, (stream, key, seq, kind, digest, data))


def decode(kind: str, data: bytes) -> Event | Profile:
    """The record a cache row holds.

    :raises CacheDamaged: when the row cannot be read back.
    """
    try:
        fields = pickle.loads(data)
        return Event(*fields) if kind == "e" else Profile(*fields)
    except Exception as exc:
        raise CacheDamaged(
            f"a cached record cannot be read back ({type(exc).__name__}: {exc})"
        ) from None
