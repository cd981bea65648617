"""A partitioned full read of a Stripe account: the profiles partition and ``created``
ranges of the other streams together make exactly the records of one unpartitioned read."""

from __future__ import annotations

import threading

import pytest
from incremental_harness import CachedSource, full_snapshot
from partition_harness import lines, read, read_partitioned

from mpconnect import Partition, RunContext
from mpconnect_stripe import StripeConnector
from mpconnect_stripe.localserver.api import TEST_KEY
from mpconnect_stripe.localserver.generate import generate
from mpconnect_stripe.ordered import ordered_pump
from mpconnect_stripe.partitioning import ranges, sub_windows
from mpconnect_stripe.pump import Window

pytestmark = pytest.mark.timeout(180)


def settings(api, **more):
    return {"api_key": TEST_KEY, "api_base": api.url, "max_requests_per_second": 500, **more}


@pytest.mark.parametrize("identity", ["customer", "user_id"])
def test_partitions_together_read_exactly_the_unpartitioned_records(stripe_api, tmp_path, identity):
    api = stripe_api(generate(seed=5, customers=50))
    config = settings(api, identity=identity, partitions_per_stream=3)
    whole = read(StripeConnector, config, tmp_path / "whole")
    partitions, parts = read_partitioned(StripeConnector, config, tmp_path)

    keys = [p.key for p in partitions]
    assert keys[0] == "profiles"
    assert {k.split(":")[0] for k in keys[1:]} == {"refunds", "invoices", "disputes"}
    assert "invoices:003-of-003" in keys
    assert lines([r for records in parts.values() for r in records]) == lines(whole)
    # Profiles (with lifetime_value, mrr) come only from the profiles partition.
    profiles = [r for r in whole if r.stream == "customer_profiles"]
    assert profiles and lines(profiles) == lines(
        [r for r in parts["profiles"] if r.stream == "customer_profiles"]
    )
    for key, records in parts.items():
        if key != "profiles":
            streams = {r.stream for r in records}
            assert streams <= {key.split(":")[0]}, (key, streams)


def test_a_partition_read_again_yields_the_same_records_in_the_same_order(stripe_api, tmp_path):
    api = stripe_api(generate(seed=6, customers=30))
    config = settings(api, identity="user_id", partitions_per_stream=2)
    partitions, first = read_partitioned(StripeConnector, config, tmp_path / "a")
    for n, partition in enumerate(partitions):
        again = read(StripeConnector, config, tmp_path / f"again-{n}", partition)
        assert again == first[partition.key], partition.key


def test_objects_created_after_the_plan_wait_for_the_next_run(stripe_api, tmp_path):
    world = generate(seed=7, customers=20)
    api = stripe_api(world)
    config = settings(api)
    partitions, before = read_partitioned(StripeConnector, config, tmp_path / "a")
    bound = partitions[0].spec["lt"]
    customer = next(iter(world.customers.values()))
    charge = world.add_charge(customer, 4200, bound + 5)
    world.add_refund(charge, 1000, bound + 6)
    after = {
        p.key: read(StripeConnector, config, tmp_path / f"b-{n}", p)
        for n, p in enumerate(partitions)
    }
    assert lines([r for rs in after.values() for r in rs]) == lines(
        [r for rs in before.values() for r in rs]
    )
    now = {r.object_id for r in read(StripeConnector, config, tmp_path / "whole")}
    assert {
        charge["id"],
        *(r["id"] for r in world.refunds.values() if r["charge"] == charge["id"]),
    } <= now


def test_only_streams_without_customers_are_all_cut_into_ranges(stripe_api, tmp_path):
    api = stripe_api(generate(seed=8, customers=20))
    config = settings(api, objects=["charges", "refunds"], partitions_per_stream=2)
    whole = read(StripeConnector, config, tmp_path / "whole")
    partitions, parts = read_partitioned(StripeConnector, config, tmp_path)
    assert [p.key for p in partitions] == [
        "charges:001-of-002",
        "charges:002-of-002",
        "refunds:001-of-002",
        "refunds:002-of-002",
    ]
    assert lines([r for rs in parts.values() for r in rs]) == lines(whole)


def test_an_incremental_run_is_one_partition(stripe_api, tmp_path):
    api = stripe_api(generate(seed=9, customers=5))
    connector = StripeConnector(StripeConnector.Settings(**settings(api)))
    ctx = RunContext(source="billing", dataset_id="D", full_refresh=False)
    assert connector.partitions(ctx) == [Partition("all")]


def test_ranges_are_adjacent_and_cover_the_interval():
    assert ranges(10, 20, 3) == [(10, 13), (13, 16), (16, 20)]
    assert ranges(10, 12, 5) == [(10, 11), (11, 12)]


def test_an_incremental_run_after_a_partitioned_full_read_in_one_process(stripe_api, tmp_path):
    """An engine that reads every partition of a full read with one connector and the
    source's state (as an in-process run does) leaves a cursor and facts the next
    incremental run starts from: the changes made after the plan are not lost."""
    world = generate(seed=11, customers=30)
    world.record_events()
    api = stripe_api(world)
    source = CachedSource(settings(api, identity="user_id"), tmp_path / "state")
    connector = StripeConnector(source.settings)
    ctx = RunContext(
        source="billing", dataset_id="D", state_dir=source.state_dir, full_refresh=True
    )
    partitions = connector.partitions(ctx)
    assert len(partitions) > 1
    customer = next(iter(world.customers.values()))
    charge = world.add_charge(customer, 4200, partitions[0].spec["lt"])  # after the bound
    records = []
    for method in (connector.events, connector.people):
        for partition in partitions:
            ctx.partition = partition
            records.extend(method(ctx))
    connector.close()
    for record in records:
        source.cache.setdefault((record.stream, record.object_id), []).append(record)
    source.state = ctx.state
    assert charge["id"] not in {r.object_id for r in records}

    world.add_refund(charge, 1000, world.now())
    outcome = source.run()
    assert not outcome.full, outcome.reasons
    assert source.snapshot() == full_snapshot(source.settings.model_dump(), tmp_path / "full")


def test_sub_windows_cover_the_range_and_stay_open_below():
    assert sub_windows(None, 100, 40, 3) == [(None, 60), (60, 80), (80, 100)]
    assert sub_windows(50, 100, 70, 2) == [(50, 85), (85, 100)]
    assert sub_windows(50, 100, None, 2) == [(50, 75), (75, 100)]
    # Cut between the oldest and the newest object; the last window reaches the bound.
    assert sub_windows(None, 100, 40, 2, newest=59) == [(None, 50), (50, 100)]


def test_ordered_pump_yields_windows_in_order_however_the_workers_finish():
    later_done = threading.Event()

    def fetch(window: Window):
        if window.stream == "first":
            assert later_done.wait(10)  # the second window is read completely first
            return [{"id": "a", "created": 1}], False
        later_done.set()
        return [{"id": "b", "created": 2}], False

    pages = ordered_pump(
        [Window("first"), Window("second")], fetch, threading.Event(), 2, lambda s, o: o["id"]
    )
    assert list(pages) == [("first", ["a"]), ("second", ["b"])]


def test_ordered_pump_raises_a_workers_error():
    def fetch(window: Window):
        raise RuntimeError(f"cannot read {window.stream}")

    with pytest.raises(RuntimeError, match="cannot read"):
        list(ordered_pump([Window("x")], fetch, threading.Event(), 2, lambda s, o: o))


def _engine_run(home, api, processes, **more):
    """One run of the source through the engine, the partitions in ``processes``
    processes (the installed plugins only, so that a process pool can be used)."""
    from mpconnect.config import parse_config
    from mpconnect.engine import Engine, RunOptions
    from mpconnect.plugins import load_plugins

    raw = {
        "sources": {
            "billing": {
                "connector": "stripe",
                "dataset_id": "STRIPE",
                "settings": settings(api, identity="user_id", **more),
            }
        }
    }
    config = parse_config(raw, home.parent / "mpconnect.toml", is_file=False)
    return Engine(config, load_plugins(), home).run("billing", RunOptions(processes=processes))


def _committed_state(home):
    import sqlite3

    import orjson

    db = sqlite3.connect(home / "state.sqlite3")
    try:
        (state,) = db.execute("SELECT state FROM state WHERE source = 'billing'").fetchone()
    finally:
        db.close()
    return orjson.loads(state)


def _live(home):
    from mpconnect.store.datasets import DatasetStore

    store = DatasetStore(home / "embedded.sqlite3")
    try:
        live = store.live_version("STRIPE")
        events = sorted(map(repr, store.iter_events("STRIPE", live.version_id)))
        people = sorted(map(repr, store.iter_people("STRIPE", live.version_id)))
    finally:
        store.close()
    return events, people


def test_a_first_run_in_two_processes_keeps_the_planners_cursor_for_the_next_run(
    stripe_api, tmp_path
):
    """The first (full) run of an incremental source, its partitions in a process pool,
    commits the events cursor taken when the partitions were planned and the facts of
    the profiles partition; the next run reads only the changes, exactly."""
    world = generate(seed=11, customers=30)
    world.record_events()
    api = stripe_api(world)
    home = tmp_path / "home"
    first = _engine_run(home, api, processes=2, partitions_per_stream=2)
    assert (first.status, first.sync) == ("succeeded", "full")
    state = _committed_state(home)
    assert set(state) == {"events_cursor", "facts_file"}
    assert (home / "state" / "billing" / state["facts_file"]).is_file()
    in_one_process = tmp_path / "in-one-process"
    _engine_run(in_one_process, api, processes=1, partitions_per_stream=1)
    assert _live(home) == _live(in_one_process)

    customer = next(iter(world.customers.values()))
    charge = world.add_charge(customer, 4200, world.now())
    world.add_refund(charge, 1000, world.now())
    lists_before = api.stats.by_path["/v1/charges"]
    second = _engine_run(home, api, processes=2, partitions_per_stream=2)
    assert (second.status, second.sync) == ("succeeded", "incremental")
    assert api.stats.by_path["/v1/charges"] == lists_before  # only the events were read
    full = tmp_path / "full"
    _engine_run(full, api, processes=1, partitions_per_stream=1)
    assert _live(home) == _live(full)
