"""``mpconnect state show SOURCE`` and ``mpconnect state reset SOURCE``: the incremental
state (cursors) and the source-object cache of a source."""

from __future__ import annotations

import time
from typing import Any

import click

from mpconnect.cli.context import CliState, echo_json
from mpconnect.errors import MpconnectError


def register(cli: click.Group) -> None:
    """Add the ``state`` group."""
    cli.add_command(state)


@click.group()
def state() -> None:
    """The incremental state of a source: its connector's cursors and its source-object
    cache (see docs/incremental.md)."""


def _describe(cli: CliState, source: str) -> dict[str, Any]:
    from mpconnect.engine.incremental import state_file
    from mpconnect.engine.object_cache import SqliteObjectCache, cache_path
    from mpconnect.engine.state import SqliteStateStore, StateDamaged

    cli.config.source(source)  # an unknown name fails here, naming the known ones
    url = cli.shared_database_url()
    if url is not None:
        return _describe_shared(url, source)
    home = cli.engine.home
    store = SqliteStateStore(state_file(home))
    info: dict[str, Any] = {"source": source, "state": None, "problem": store.damaged}
    try:
        committed = store.load(source)
    except StateDamaged as exc:
        committed, info["problem"] = None, str(exc)
    finally:
        store.close()
    _add_committed(info, committed)
    path = cache_path(home, source)
    info["cache_file"] = str(path)
    info["cache"] = None
    if path.exists():
        cache = SqliteObjectCache(path)
        try:
            info["cache"] = cache.stats() if cache.exists() else None
            info["problem"] = info["problem"] or cache.damaged
        finally:
            cache.close()
    return info


def _describe_shared(url: str, source: str) -> dict[str, Any]:
    """The state and cache of ``source`` in the shared database (``[distributed]``)."""
    from mpconnect.distributed.connection import Database, describe
    from mpconnect.distributed.object_cache import PostgresObjectCache
    from mpconnect.distributed.state import PostgresStateStore
    from mpconnect.engine.state import StateDamaged

    database = Database(url)
    info: dict[str, Any] = {"source": source, "state": None, "problem": None}
    try:
        try:
            committed = PostgresStateStore(database).load(source)
        except StateDamaged as exc:
            committed, info["problem"] = None, str(exc)
        _add_committed(info, committed)
        cache = PostgresObjectCache(database, source)
        info["cache_file"] = f"shared database {describe(url)}"
        info["cache"] = cache.stats() if cache.exists() else None
    finally:
        database.close()
    return info


def _add_committed(info: dict[str, Any], committed: Any) -> None:
    if committed is not None:
        info.update(
            state=committed.state,
            committed_by=committed.run_id,
            committed_at=committed.committed_at,
            last_run=committed.last_run,
        )


@state.command("show")
@click.argument("source")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def state_show(cli: CliState, source: str, as_json: bool = False) -> None:
    """Show SOURCE's committed state, what its last run did and its cache's size."""
    info = _describe(cli, source)
    if as_json:
        echo_json(info)
        return
    if info["state"] is None:
        click.echo(f"{source}: no state: its next run reads everything")
    else:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["committed_at"]))
        click.echo(f"{source}: state committed {when} by run {info['committed_by']}")
        for key, value in sorted(info["state"].items()):
            click.echo(f"  {key} = {value!r}")
        last = info["last_run"] or {}
        if last:
            kind = last.get("sync", "?")
            reason = f" ({last['reason']})" if last.get("reason") else ""
            click.echo(
                f"  last run: {kind}{reason}; read {last.get('read', 0):,} objects "
                f"({last.get('changed', 0):,} changed, {last.get('deleted', 0):,} deleted), "
                f"{last.get('cached', 0):,} served from cache"
            )
    cache = info["cache"]
    if cache:
        click.echo(
            f"  cache: {cache['objects']:,} objects, {cache['records']:,} records "
            f"({info['cache_file']})"
        )
    elif info["state"] is not None:
        click.echo("  cache: missing; the next run reads everything to rebuild it")
    if info["problem"]:
        click.echo(f"  problem: {info['problem']}")


@state.command("reset")
@click.argument("source")
@click.pass_obj
def state_reset(cli: CliState, source: str) -> None:
    """Forget SOURCE's state and cache: its next run reads everything (as with
    ``mpconnect run SOURCE --full-refresh``)."""
    cli.config.source(source)
    engine = cli.engine
    lock = engine.lock_factory(source, "state-reset")
    lock.acquire()  # refused while the source runs
    try:
        if cli.shared_database_url() is not None:
            had = _reset_shared(engine, source)
        else:
            had = _reset_local(engine, source)
    finally:
        lock.release()
    if had:
        click.echo(f"{source}: state and cache reset; the next run reads everything")
    else:
        click.echo(f"{source}: had no state; the next run reads everything")


def _reset_shared(engine: Any, source: str) -> bool:
    """Forget the source's state and cache in the shared database."""
    store = engine.state_store()
    cache = engine.object_cache(source)
    try:
        cache.reset()
        return bool(store.reset(source))
    finally:
        cache.close()
        store.close()


def _reset_local(engine: Any, source: str) -> bool:
    """Forget the source's state file rows and remove its cache file."""
    from mpconnect.engine.incremental import state_file
    from mpconnect.engine.object_cache import cache_path
    from mpconnect.engine.state import SqliteStateStore

    store = SqliteStateStore(state_file(engine.home))
    try:
        had = store.reset(source)
    finally:
        store.close()
    path = cache_path(engine.home, source)
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            file.unlink(missing_ok=True)
        except OSError as exc:
            raise MpconnectError(f"cannot remove {file}: {exc}") from None
    return bool(had)
