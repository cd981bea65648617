"""Keep freed memory for reuse instead of giving it back to the system at once (glibc).

Each batch passes through a few buffers of hundreds of kB: the spool file read back, its
base64, the request body. glibc serves buffers that large with ``mmap`` or from the top
of the heap and returns them to the system when they are freed, so the next batch's
buffers are fresh pages again, each page faulted in and zeroed by the kernel: about 250
page faults and 0.6 ms of system CPU per 1000-event batch, as much as building the body
itself. With a fixed mmap threshold and a high trim threshold, freed buffers are reused
(``bench/upload_path.py``; README, "The upload threads"). Peak memory is the
same; memory freed after a peak is kept by the process for its next batches.

Set for the running process with ``mallopt`` and, through the environment variables glibc
reads when a process starts, for the processes it starts (the process pool's workers,
Celery workers).
A value already in the environment is kept; other C libraries are left alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys

#: glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Free memory at the top of the heap kept rather than given back.
TRIM_THRESHOLD = 64 * 1024 * 1024
#: Allocations at least this large get their own mapping (glibc's largest allowed value).
MMAP_THRESHOLD = 32 * 1024 * 1024
_SETTINGS = (
    ("MALLOC_TRIM_THRESHOLD_", _M_TRIM_THRESHOLD, TRIM_THRESHOLD),
    ("MALLOC_MMAP_THRESHOLD_", _M_MMAP_THRESHOLD, MMAP_THRESHOLD),
)


def keep_freed_memory() -> bool:
    """Tune glibc's allocator of this process and of those it starts; False (and nothing
    changed) where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    if not hasattr(libc, "gnu_get_libc_version"):
        return False
    for variable, parameter, value in _SETTINGS:
        if variable in os.environ:
            continue  # the user's own setting, read by glibc at start
        with contextlib.suppress(OSError):
            mallopt(ctypes.c_int(parameter), ctypes.c_int(value))
        os.environ[variable] = str(value)
    return True
