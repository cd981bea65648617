"""The value types a sink, a Mixpanel client and the embedded store share.

They live below all three rooms (``mixpanel/``, ``store/``, ``sinks/``) so that no import
runs upward; :mod:`mpconnect.sink` re-exports them for sink authors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

RecordKind = Literal["events", "people"]
#: The Datasets API's "never happened" timestamp.
ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass
class VersionInfo:
    """A dataset version as the Datasets API describes it."""

    version_id: str
    created_at: str
    is_live: bool = False
    readable: bool = False
    writable: bool = True
    ready: bool = False
    readable_at: str = ZERO_TIME
    ready_at: str = ZERO_TIME

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> VersionInfo:
        """Build from the API's JSON object (``{"version_id", "created_at", "state": ...}``)."""
        state = data.get("state") or {}
        return cls(
            version_id=str(data["version_id"]),
            created_at=str(data.get("created_at", ZERO_TIME)),
            is_live=bool(data.get("is_live", False)),
            readable=bool(state.get("readable", False)),
            writable=bool(state.get("writable", True)),
            ready=bool(state.get("ready", False)),
            readable_at=str(state.get("readable_at", ZERO_TIME)),
            ready_at=str(state.get("ready_at", ZERO_TIME)),
        )

    def to_api(self) -> dict[str, Any]:
        """Return the API's JSON object for this version."""
        return {
            "created_at": self.created_at,
            "is_live": self.is_live,
            "state": {
                "readable": self.readable,
                "readable_at": self.readable_at,
                "ready": self.ready,
                "ready_at": self.ready_at,
                "writable": self.writable,
            },
            "version_id": self.version_id,
        }


@dataclass
class ImportResult:
    """What a sink did with one batch.

    :param imported: records accepted.
    :param rejected: ``(index in batch, reason)`` for records the destination refused
        while keeping the rest (Mixpanel's strict mode); the engine quarantines them.
    :param collapsed: records accepted but kept once because an identical one was there
        already (the embedded store's people updates); counted as duplicates.
    """

    imported: int
    rejected: list[tuple[int, str]] = field(default_factory=list)
    collapsed: int = 0
