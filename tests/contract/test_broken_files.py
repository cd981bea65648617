"""Broken files under $MPCONNECT_HOME give one line naming the path and the fix, never a
traceback; files mpconnect creates there are readable by their owner only."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path
from typing import Any

import mpconnect
from mpconnect.engine.ledger import SqliteRunLedger

GARBAGE = b"this is not an SQLite file\x00\xff" * 200


def error_line(result: Any) -> str:
    """The one error line a failed command printed (and check it is one line)."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("mpconnect: error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_a_garbage_ledger_names_the_file_and_the_fix(
    cli: Any, demo_config: Path, mpconnect_home: Path
) -> None:
    mpconnect_home.mkdir(parents=True)
    ledger = mpconnect_home / "ledger.sqlite3"
    ledger.write_bytes(GARBAGE)

    line = error_line(cli("--config", demo_config, "run", "demo"))

    assert line == (
        f"mpconnect: error: {ledger} (run ledger): file is not a database; the file is "
        f"damaged or is not mpconnect's. Move it aside (mv {ledger} {ledger}.damaged) and "
        "run again: mpconnect starts a new, empty one"
    )
    ledger.rename(ledger.with_name("ledger.sqlite3.damaged"))
    assert cli("--config", demo_config, "run", "demo").exit_code == 0


def test_a_garbage_embedded_store_names_the_file_and_the_fix(
    cli: Any, demo_config: Path, mpconnect_home: Path
) -> None:
    mpconnect_home.mkdir(parents=True)
    store = mpconnect_home / "embedded.sqlite3"
    store.write_bytes(GARBAGE)

    line = error_line(cli("--config", demo_config, "run", "demo"))

    assert line.startswith(
        f"mpconnect: error: {store} (embedded store): file is not a "
        "database; the file is damaged or is not mpconnect's. Move it aside"
    )


def test_a_lock_path_that_is_a_directory_names_it(
    cli: Any, demo_config: Path, mpconnect_home: Path
) -> None:
    lock = mpconnect_home / "locks" / "demo.lock"
    lock.mkdir(parents=True)

    line = error_line(cli("--config", demo_config, "run", "demo"))

    assert line == (
        f"mpconnect: error: {lock} (the lock of source 'demo'): Is a directory; "
        f"it is a directory where mpconnect needs a file; remove it (rmdir {lock})"
    )


def test_a_spool_path_that_is_a_file_names_it_and_the_run_is_recorded_failed(
    cli: Any, demo_config: Path, mpconnect_home: Path
) -> None:
    mpconnect_home.mkdir(parents=True)
    (mpconnect_home / "spool").write_text("not a directory")

    line = error_line(cli("--config", demo_config, "run", "demo"))

    assert line == (
        f"mpconnect: error: demo: {mpconnect_home / 'spool'} (the run's spool): "
        "File exists; a file is in the way where mpconnect needs a directory; "
        "move that file aside"
    )
    [run] = SqliteRunLedger(mpconnect_home / "ledger.sqlite3").list_runs("demo")
    assert run["status"] == "failed" and "File exists" in run["error"]


def test_a_resume_whose_spool_is_gone_abandons_that_version_and_starts_fresh(
    cli: Any, write_config: Any, mpconnect_home: Path
) -> None:
    config = write_config(
        """
        [sources.demo]
        connector = "demo"
        dataset_id = "DEMO"
        [sources.demo.settings]
        events = 1500
        [engine]
        concurrency = 1
        """
    )
    ledger = SqliteRunLedger(mpconnect_home / "ledger.sqlite3")
    cli("--config", config, "run", "demo")
    # A failed upload leaves a resumable version; here the ledger is set as one would be.
    [done] = ledger.list_runs("demo")
    ledger.set_status(done["run_id"], "failed", "simulated")
    ledger._db().execute(
        "UPDATE runs SET published = 0, extraction_done = 1, spool_dir = ? WHERE run_id = ?",
        (str(mpconnect_home / "spool" / "gone"), done["run_id"]),
    )

    result = cli("--config", config, "run", "demo")

    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert f"its spool {mpconnect_home / 'spool' / 'gone'} is gone" in result.stderr
    runs = ledger.list_runs("demo")
    assert [r["status"] for r in runs] == ["succeeded", "abandoned"]
    assert runs[0]["resumed"] == 0 and runs[0]["imported"] == 1650


def test_files_and_folders_under_home_are_readable_by_their_owner_only(
    cli: Any, write_config: Any, mpconnect_home: Path
) -> None:
    config = write_config(
        """
        [sources.demo]
        connector = "demo"
        dataset_id = "DEMO"
        [sources.demo.settings]
        events = 200
        """
    )
    result = cli("--config", config, "run", "demo", plugins=[_BadOne()])
    assert result.exit_code == 0, result.output

    paths = [mpconnect_home, *mpconnect_home.rglob("*")]
    names = {p.relative_to(mpconnect_home).parts[0] for p in paths[1:]}
    assert {"ledger.sqlite3", "embedded.sqlite3", "quarantine", "locks", "state"} <= names
    loose = [
        f"{p} {stat.filemode(p.stat().st_mode)}"
        for p in paths
        if stat.S_IMODE(p.stat().st_mode) & 0o077
    ]
    assert loose == []
    shutil.rmtree(mpconnect_home)


class _BadOne:
    """Gives one demo event a placeholder distinct id, so the run quarantines it."""

    done = False

    @mpconnect.hookimpl
    def transform_record(self, record: Any, source: str) -> None:
        """Spoil the first event."""
        if isinstance(record, mpconnect.Event) and not self.done:
            record.distinct_id = "N/A"
            self.done = True
