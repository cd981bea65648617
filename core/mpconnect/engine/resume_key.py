"""The resume key: what shaped an unfinished version's spool, so a changed source is
never resumed from an old spool.

A key names each part that shapes a snapshot: the connector and its version, the
source's settings, the dataset, the sink and where it writes, the project token and the
plugins that transform records. Settings, the sink's destination and the token appear
only as HMACs under a per-installation key kept in ``$MPCONNECT_HOME/resume.key``
(mode 0600), so the ledger never holds a secret nor an unkeyed hash of one.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, SecretBytes, SecretStr

from mpconnect.errors import ConfigError

KEY_FILE = "resume.key"
_KEY_BYTES = 32


def installation_key(home: Path) -> bytes:
    """Return this installation's HMAC key, creating ``home/resume.key`` (0600) once.

    :raises ConfigError: when the file exists but cannot be read or holds no key.
    """
    path = home / KEY_FILE
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    home.mkdir(parents=True, exist_ok=True)
    temporary = home / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(_KEY_BYTES) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # a concurrent first run made it
            os.link(temporary, path)  # atomic: the file appears whole or not at all
    finally:
        temporary.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="ascii").strip()
        key = bytes.fromhex(text)
    except (UnicodeDecodeError, ValueError):
        key = b""
    except PermissionError:
        raise ConfigError(
            f"{path}: cannot read the installation's resume key; give this "
            "user read access (mode 0600, owned by the user running mpconnect)"
        ) from None
    if len(key) < 16:
        raise ConfigError(
            f"{path}: not a resume key; delete the file (a new one is made, and "
            "unfinished versions are then started afresh)"
        )
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return key


@dataclass(frozen=True)
class ResumeKey:
    """What shaped a spool, part by part (no secret, no unkeyed hash of one)."""

    key_id: str
    connector: str
    settings: str
    dataset: str
    sink: str
    destination: str
    token: str
    transforms: tuple[str, ...]

    def dumps(self) -> str:
        """The key as the ledger keeps it (JSON)."""
        return orjson.dumps(asdict(self), option=orjson.OPT_SORT_KEYS).decode()

    @classmethod
    def loads(cls, text: str | None) -> ResumeKey | None:
        """Read a key the ledger kept; None for a row written before keys existed."""
        if not text:
            return None
        try:
            data = orjson.loads(text)
            data["transforms"] = tuple(data["transforms"])
            return cls(**data)
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None

    def changes_since(self, old: ResumeKey | None) -> list[str]:
        """Say, part by part, what differs from ``old`` (empty: nothing changed)."""
        if old is None:
            return [
                "it was made by an earlier mpconnect that did not record the source's "
                "settings and connector"
            ]
        if old.key_id != self.key_id:
            return [
                f"the installation's resume key changed ({KEY_FILE} was replaced), so "
                "what made it cannot be compared"
            ]
        changes = []
        if old.connector != self.connector:
            old_name, _, old_version = old.connector.rpartition(" ")
            name, _, version = self.connector.rpartition(" ")
            shown = (
                f"{name} {old_version} -> {version}"
                if old_name == name
                else f"{old.connector} -> {self.connector}"
            )
            changes.append(f"the connector changed ({shown})")
        if old.settings != self.settings:
            changes.append("the source's settings changed since it was made")
        if old.dataset != self.dataset:
            changes.append(f"the dataset changed ({old.dataset} -> {self.dataset})")
        if old.sink != self.sink:
            changes.append(f"the sink changed ({old.sink} -> {self.sink})")
        elif old.destination != self.destination:
            changes.append(f"the {self.sink} sink's destination changed since it was made")
        if old.token != self.token:
            changes.append("the project token changed since it was made")
        if old.transforms != self.transforms:
            changes.append(
                f"the plugins transforming records changed "
                f"({_names(old.transforms)} -> {_names(self.transforms)})"
            )
        return changes


def make_resume_key(
    key: bytes,
    *,
    connector: str,
    connector_version: str | None,
    settings: BaseModel | Mapping[str, Any],
    dataset_id: str,
    sink: str,
    destination: str,
    token: str,
    transforms: Sequence[str] = (),
) -> ResumeKey:
    """Build the resume key of a run from everything that shapes its snapshot."""

    def keyed(part: str, value: Any) -> str:
        message = part.encode() + b"\0" + _canonical(value)
        return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]

    return ResumeKey(
        key_id=hmac.new(key, b"key-id", hashlib.sha256).hexdigest()[:8],
        connector=f"{connector} {connector_version or 'unversioned'}",
        settings=keyed("settings", settings),
        dataset=dataset_id,
        sink=sink,
        destination=keyed("destination", destination),
        token=keyed("token", token),
        transforms=tuple(transforms),
    )


def _canonical(value: Any) -> bytes:
    return orjson.dumps(
        _plain(value), option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str
    )


def _plain(value: Any) -> Any:
    """Settings as plain JSON values, secrets revealed (they are only ever HMACed)."""
    if isinstance(value, SecretStr):
        return {"secret": value.get_secret_value()}
    if isinstance(value, SecretBytes):
        return {"secret": value.get_secret_value().hex()}
    if isinstance(value, BaseModel):
        fields = {name: _plain(getattr(value, name)) for name in type(value).model_fields}
        return {**_plain(value.model_extra or {}), **fields}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((_plain(v) for v in value), key=repr)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, Path):
        return str(value)
    return value


def _names(transforms: tuple[str, ...]) -> str:
    return ", ".join(transforms) or "none"
