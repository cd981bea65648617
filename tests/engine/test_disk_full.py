"""A full disk ends a run with one line naming the path and the free space; the ledger
records the failure; the next run removes dead spools before it needs any space.

The disk is a small tmpfs mounted for the test (the machine runs as root); where mount is
not permitted, a fake disk of the same size fails writes at the OS boundary instead.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_support import SAFETY_TIMEOUT

import mpconnect
from mpconnect.config import parse_config
from mpconnect.engine import Engine
from mpconnect.engine import spool as spool_module
from mpconnect.engine.ledger import SqliteRunLedger
from mpconnect.plugins import load_plugins

DISK_BYTES = 4 * 1024 * 1024
PAYLOAD = "x" * 2_500  # 1000 events, one batch, of about 2.5 MB


def used_bytes(disk: Path) -> int:
    """Bytes of the files under ``disk``."""
    return sum(f.stat().st_size for f in disk.rglob("*") if f.is_file())


class _FakeDiskOs:
    """``os`` as the spool sees it, as if ``disk`` held ``DISK_BYTES``: a write past what
    its files leave free fails with ENOSPC."""

    def __init__(self, disk: Path) -> None:
        self.disk = disk

    def write(self, fd: int, data: Any) -> int:
        if used_bytes(self.disk) + len(data) > DISK_BYTES:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.write(fd, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


@pytest.fixture
def small_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on a 4 MB file system; $MPCONNECT_HOME is in it."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(disk)],
            capture_output=True,
        ).returncode
        == 0
    )
    if not mounted:
        monkeypatch.setattr(spool_module, "os", _FakeDiskOs(disk))
    monkeypatch.setenv("MPCONNECT_HOME", str(disk / "home"))
    try:
        yield disk
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(disk)], check=False)


class BulkyConnector(mpconnect.Connector):
    """Yields ``events`` events of about 2.5 KB; with ``die_after``, the process dies
    there as by ``kill -9`` (no cleanup runs)."""

    name = "bulky"

    class Settings(mpconnect.ConnectorSettings):
        events: int = 3200
        die_after: int | None = None

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        """The events."""
        for index in range(self.settings.events):
            if index == self.settings.die_after:
                os._exit(9)
            yield mpconnect.Event(
                "Bulk",
                f"user-{index:05d}",
                1_700_000_000 + index,
                object_id=f"bulk-{index}",
                properties={"blob": PAYLOAD},
            )

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        """No profiles."""
        yield from ()


class BulkyPlugin:
    """Registers :class:`BulkyConnector`."""

    @mpconnect.hookimpl
    def register_connectors(self, register: Callable[[type], None]) -> None:
        """Register the connector."""
        register(BulkyConnector)


def write_config(tmp_path: Path, **settings: int) -> Path:
    """A config whose ``bulky`` source loads into a store off the small disk."""
    lines = "\n".join(f"{key} = {value}" for key, value in settings.items())
    path = tmp_path / "mpconnect.toml"
    path.write_text(f"""
[mixpanel]
sink = "embedded"
store = "{tmp_path / "store.sqlite3"}"

[engine]
concurrency = 1

[sources.bulky]
connector = "bulky"
dataset_id = "BULKY"

[sources.bulky.settings]
{lines}
""")
    return path


def test_a_full_disk_is_one_line_naming_the_path_and_the_free_space(
    tmp_path: Path, small_disk: Path, cli: Any
) -> None:
    config = write_config(tmp_path, events=3200)  # 8 MB of spool for a 4 MB disk

    result = cli("--config", config, "run", "bulky", plugins=[BulkyPlugin()])

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    [line] = [line for line in result.stderr.splitlines() if line.startswith("mpconnect: error")]
    spool = small_disk / "home" / "spool"
    assert line.startswith(f"mpconnect: error: bulky: {spool}/")
    assert "(a batch of the run's spool): no space left on the device (" in line
    assert line.endswith(
        " free on its file system); free some space or point "
        "MPCONNECT_HOME at a larger disk, then run again"
    )
    [run] = SqliteRunLedger(small_disk / "home" / "ledger.sqlite3").list_runs("bulky")
    assert run["status"] == "failed" and "no space left on the device" in run["error"]
    assert not any(spool.iterdir()), "the unfinished spool was removed at once"


def _crash_while_spooling(config: Path) -> None:
    """Run ``bulky`` in this (forked) process until the connector kills it."""
    engine = Engine(parse_config_file(config), load_plugins([BulkyPlugin()]))
    engine.run("bulky")


def parse_config_file(path: Path) -> Any:
    """Read a config file as the CLI does."""
    import tomllib

    return parse_config(tomllib.loads(path.read_text()), path)


def test_the_next_run_removes_a_dead_spool_before_it_needs_space(
    tmp_path: Path, small_disk: Path, cli: Any
) -> None:
    crashing = write_config(tmp_path, events=3200, die_after=1001)
    child = multiprocessing.get_context("fork").Process(
        target=_crash_while_spooling, args=(crashing,)
    )
    child.start()
    child.join(SAFETY_TIMEOUT)
    assert child.exitcode == 9
    home = small_disk / "home"
    [dead] = list((home / "spool").iterdir())
    assert sum(f.stat().st_size for f in dead.iterdir()) > 2_000_000
    filler = small_disk / "filler"
    if isinstance(spool_module.os, _FakeDiskOs):  # the fake disk: fill it by its count
        filler.write_bytes(b"\0" * (DISK_BYTES - used_bytes(small_disk)))
    else:
        with filler.open("wb") as out:  # fill what the dead spool left free
            try:
                while True:
                    out.write(b"\0" * 65536)
                    out.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC

    result = cli(
        "--config", write_config(tmp_path, events=20), "run", "bulky", plugins=[BulkyPlugin()]
    )

    assert result.exit_code == 0, result.output
    assert not dead.exists()
    runs = SqliteRunLedger(home / "ledger.sqlite3").list_runs("bulky")
    assert [r["status"] for r in runs] == ["succeeded", "abandoned"]
    assert runs[0]["imported"] == 20
