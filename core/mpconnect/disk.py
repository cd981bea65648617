"""Turning a failed file operation into one line that names the path and the fix.

Every place mpconnect writes under ``$MPCONNECT_HOME`` (spool, ledger, embedded store,
quarantine, locks) translates :class:`OSError` here, so a full disk reads the same
wherever it happens::

    /var/lib/mpconnect/spool/20240101T000000-ab12cd34/0000042-events.json: no space left
    on the device (12.0 KB free on its file system); free some space or point
    MPCONNECT_HOME at a larger disk, then run again
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from mpconnect.errors import MpconnectError

__all__ = [
    "DiskFullError",
    "FileProblem",
    "file_problem",
    "free_space",
    "is_disk_full",
    "private_dir",
    "private_file",
    "translate_os_errors",
]

_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


class FileProblem(MpconnectError):
    """A file or directory mpconnect needs is missing, misplaced, damaged or unwritable.

    :param path: the file or directory concerned.
    """

    def __init__(self, message: str, path: Path | str) -> None:
        super().__init__(message)
        self.path = Path(path)


class DiskFullError(FileProblem):
    """No space (or quota) is left where mpconnect writes."""


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc`` is an OSError saying the disk or quota is full."""
    return isinstance(exc, OSError) and exc.errno in _FULL


def free_space(path: Path | str) -> str:
    """The free space on the file system holding ``path`` (or its nearest existing
    parent), such as ``"12.0 KB"``; ``"unknown"`` when it cannot be read."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = float(shutil.disk_usage(probe).free)
    except OSError:
        return "unknown"
    for unit in ("bytes", "KB", "MB", "GB"):
        if free < 1024 or unit == "GB":
            return f"{free:.0f} bytes" if unit == "bytes" else f"{free:.1f} {unit}"
        free /= 1024
    return "unknown"  # pragma: no cover - the loop always returns


def file_problem(exc: OSError, path: Path | str, what: str = "") -> FileProblem:
    """Describe a failed file operation on ``path`` as one line with the fix.

    :param exc: the error the operation raised.
    :param path: the file or directory mpconnect was using.
    :param what: what the path is for, such as ``"the run ledger"``, for the message.
    """
    # The failing call names the exact path (a parent in the way, say) when it can.
    path = Path(exc.filename if isinstance(exc.filename, str) else path)
    role = f" ({what})" if what else ""
    code = exc.errno
    if code in _FULL:
        return DiskFullError(
            f"{path}{role}: no space left on the device ({free_space(path)} free on its file "
            "system); free some space or point MPCONNECT_HOME at a larger disk, then run "
            "again",
            path,
        )
    if code == errno.EISDIR:
        fix = f"it is a directory where mpconnect needs a file; remove it (rmdir {path})"
    elif code in (errno.ENOTDIR, errno.EEXIST):
        fix = "a file is in the way where mpconnect needs a directory; move that file aside"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = (
            "mpconnect may not write here; give the user running mpconnect write access "
            "or point MPCONNECT_HOME elsewhere"
        )
    elif code == errno.ENOENT:
        fix = "it does not exist (was it deleted while mpconnect was using it?)"
    else:
        fix = "check the file system"
    return FileProblem(f"{path}{role}: {exc.strerror or exc}; {fix}", path)


@contextmanager
def translate_os_errors(path: Path | str, what: str = "") -> Iterator[None]:
    """Raise :class:`FileProblem` (or :class:`DiskFullError`) for an OSError inside."""
    try:
        yield
    except FileProblem:
        raise
    except OSError as exc:
        raise file_problem(exc, path, what) from exc


def private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents readable by the owner only (0700)."""
    missing = []
    probe = path
    while not probe.is_dir():
        missing.append(probe)
        if probe == probe.parent:
            break
        probe = probe.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            if not directory.is_dir():
                raise
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty and readable by the owner only (0600) unless it exists."""
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return path
