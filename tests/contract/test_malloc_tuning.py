"""glibc's allocator keeps freed memory: building batch after batch of request bodies
then reuses it instead of faulting fresh pages in for each (counted by the kernel)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mpconnect.malloc_tuning import keep_freed_memory

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not os.confstr("CS_GNU_LIBC_VERSION"),
    reason="glibc only",
)

#: Reads a 300 kB batch file back and builds its Datasets form body 40 times, as an upload
#: thread does; prints the page faults per batch.
BODIES = """
import pathlib, resource, sys
from mpconnect.malloc_tuning import keep_freed_memory
if sys.argv[1] == "tuned":
    keep_freed_memory()
from mpconnect.mixpanel.datasets import encode_import_form
batch = pathlib.Path(sys.argv[2])
records = (b'{"event":"Paid","properties":{"n":%d}}' % n for n in range(8000))
batch.write_bytes(b'[' + b','.join(records) + b']')
for _ in range(5):
    encode_import_form(batch.read_bytes(), "DEMO", "1")
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(40):
    encode_import_form(batch.read_bytes(), "DEMO", "1")
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 40)
"""


def _faults_per_body(mode: str, batch: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", BODIES, mode, str(batch)],
        env=env,
        capture_output=True,
        check=True,
        timeout=120,
    )
    return float(out.stdout)


def test_bodies_built_one_after_another_reuse_freed_memory(tmp_path: Path) -> None:
    batch = tmp_path / "0000001-events.json"
    assert _faults_per_body("plain", batch) > 50  # fresh pages for every body (what is fixed)
    assert _faults_per_body("tuned", batch) < 5


def test_processes_started_later_inherit_it_and_a_users_own_setting_is_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1048576")

    assert keep_freed_memory()

    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "1048576"
    assert os.environ["MALLOC_MMAP_THRESHOLD_"] == str(32 * 1024 * 1024)
