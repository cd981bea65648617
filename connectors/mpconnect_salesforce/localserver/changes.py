"""Changing the local org after seeding, for tests of incremental runs.

The org has a clock: the real UTC time plus an offset that :meth:`Changes.advance` moves
forward, so tests can age a cursor past the recycle bin's retention. Creating, updating
and deleting a row stamps its ``SystemModstamp`` with the clock's time, as Salesforce
does; a deleted row moves to its object's recycle bin (``IsDeleted = true``), where only
``queryAll`` sees it until it is older than ``RECYCLE_BIN_DAYS``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .schema import Row, make_id

if TYPE_CHECKING:
    from .schema import Table

__all__ = ["Changes"]


class Changes:
    """The org's clock and the test helpers that change its rows."""

    tables: dict[str, Table]

    def __init__(self) -> None:
        self.offset = timedelta(0)
        #: Bumped by every change, so cached counts know they are stale.
        self.version = 0

    def now(self) -> datetime:
        """The org's current time (UTC, millisecond precision, as Salesforce keeps)."""
        now = datetime.now(UTC) + self.offset
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    def advance(self, **delta: float) -> None:
        """Move the org's clock forward, such as ``advance(days=16)``."""
        self.offset += timedelta(**delta)

    def _table_of(self, record_id: str) -> Table:
        for table in self.tables.values():
            if record_id.startswith(table.prefix):
                return table
        raise KeyError(f"no object has ids like {record_id!r}")

    def create(self, name: str, **values: Any) -> str:
        """Create a row of object ``name``; return its new Id."""
        table = self.tables[name.lower()]
        record_id = make_id(table.prefix, table.size + len(table.created))
        now = self.now()
        row: Row = {f.name: None for f in table.fields}
        row.update(CreatedDate=now, **values, Id=record_id, SystemModstamp=now, IsDeleted=False)
        table.created.append(row)
        self.version += 1
        return record_id

    def update(self, record_id: str, **values: Any) -> None:
        """Change fields of a live row (its ``SystemModstamp`` becomes now)."""
        table = self._table_of(record_id)
        row = table.get(record_id)
        if row is None:
            raise KeyError(f"no live {table.name} {record_id}")
        table.edits[record_id] = {**row, **values, "SystemModstamp": self.now()}
        self.version += 1

    def delete(self, record_id: str) -> None:
        """Delete a live row into its object's recycle bin."""
        table = self._table_of(record_id)
        row = table.get(record_id)
        if row is None:
            raise KeyError(f"no live {table.name} {record_id}")
        table.bin[record_id] = {**row, "IsDeleted": True, "SystemModstamp": self.now()}
        table.edits.pop(record_id, None)
        self.version += 1
