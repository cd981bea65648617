"""How the Stripe connector reads: pagination, rate limits, 429s, 5xx, bad keys, stopping."""

from __future__ import annotations

import logging
import threading
from collections import Counter

import pytest
from stripe_examples import settings_for

from mpconnect import RunContext, SourceError
from mpconnect.testing import run_connector
from mpconnect_stripe import StripeConnector, StripeSettings
from mpconnect_stripe.localserver.api import LIVE_KEY, RESTRICTED_KEY, TEST_KEY
from mpconnect_stripe.localserver.generate import generate
from mpconnect_stripe.localserver.world import BASE_TIME, DAY, World

pytestmark = pytest.mark.timeout(60)

BAD_KEY = "sk_test_51MpcLocalThisKeyIsWrong9876"


def ctx() -> RunContext:
    return RunContext(source="billing", dataset_id="STRIPE")


@pytest.fixture(scope="module")
def big_world():
    """Enough objects for many pages: about 1,500 charges and 900 invoices."""
    return generate(seed=11, customers=300)


def expected_counts(world) -> Counter:
    return Counter(e.name for e in world.expected)


class OneWorker(StripeConnector):
    """Reads with a single worker: plain cursor pagination, no windows."""

    max_workers = 1


def test_pagination_across_many_pages(stripe_api, big_world):
    api = stripe_api(big_world)
    collected = run_connector(OneWorker, settings_for(api, objects=["charges"]))
    charge_ids = [e["properties"]["charge_id"] for e in collected.events]
    expected = [
        c["id"] for c in big_world.charges.values() if c["status"] in ("succeeded", "failed")
    ]
    assert sorted(charge_ids) == sorted(expected)
    pages = len(big_world.charges) // 100 + 1
    assert pages >= 15
    queries = [q for path, q in api.stats.queries if path == "/v1/charges"]
    assert len(queries) == pages
    assert all(q.startswith("limit=100") for q in queries)
    assert sum("starting_after=" in q for q in queries) == pages - 1


def test_workers_share_each_list_by_created_windows(stripe_api, big_world):
    api = stripe_api(big_world)
    collected = run_connector(StripeConnector, settings_for(api))
    assert Counter(e["event"] for e in collected.events) == expected_counts(big_world)
    charge_ids = [
        e["properties"]["charge_id"] for e in collected.events if e["event"].startswith("Charge ")
    ]
    assert len(charge_ids) == len(set(charge_ids))
    assert len(collected.people) == len(big_world.customers)
    queries = [q for path, q in api.stats.queries if path == "/v1/charges"]
    assert any("created[lt]=" in q for q in queries)  # the list was split
    assert len(queries) < 2 * (len(big_world.charges) // 100 + 1) + 32


def test_windows_split_correctly_when_many_objects_share_a_second(stripe_api):
    world = World(seed=2)
    customer = world.add_customer(BASE_TIME)
    for n in range(950):
        world.add_charge(customer, 100 + n, BASE_TIME + DAY + (n % 4))
    api = stripe_api(world)
    collected = run_connector(StripeConnector, settings_for(api, objects=["charges"]))
    assert sorted(e["properties"]["charge_id"] for e in collected.events) == sorted(world.charges)


def test_a_429_storm_is_survived(stripe_api, small_world):
    api = stripe_api(small_world.world)
    calm = run_connector(StripeConnector, settings_for(api))
    api.storm(0.8)
    stormy = run_connector(StripeConnector, settings_for(api))
    assert api.stats.throttled >= 6  # every stream was turned away at least once
    assert Counter(e["event"] for e in stormy.events) == Counter(e["event"] for e in calm.events)
    assert stormy.people == calm.people


def test_server_rate_limit_exceeded_then_honoured(stripe_api, big_world):
    api = stripe_api(big_world)
    api.set_rate_limit(20, burst=5)
    collected = run_connector(StripeConnector, settings_for(api, max_requests_per_second=2000))
    assert api.stats.throttled > 0
    assert Counter(e["event"] for e in collected.events) == expected_counts(big_world)


def test_shared_limiter_keeps_all_streams_under_the_limit(stripe_api, small_world):
    api = stripe_api(small_world.world, rate_limit=30)
    # The client bursts 2 then spaces requests 50 ms apart; a burst of 4 on the server
    # leaves room for two requests that a loaded machine delivers together.
    api.set_rate_limit(30, burst=4)
    collected = run_connector(StripeConnector, settings_for(api, max_requests_per_second=20))
    assert api.stats.requests == 6  # one page per stream, six streams at once
    assert api.stats.throttled == 0
    assert collected.events


def test_server_errors_are_retried(stripe_api, small_world):
    api = stripe_api(small_world.world)
    api.fail_next(2, status=500)
    collected = run_connector(StripeConnector, settings_for(api, objects=["charges"]))
    assert api.stats.by_status[500] == 2
    assert api.stats.by_path["/v1/charges"] == 3
    assert len(collected.events) == 9


def test_stripe_should_retry_false_is_not_retried(stripe_api, small_world):
    api = stripe_api(small_world.world)
    api.fail_next(1, status=500, should_retry="false")
    with pytest.raises(SourceError) as info:
        run_connector(StripeConnector, settings_for(api, objects=["charges"]))
    assert str(info.value).startswith("stripe: GET /v1/charges: HTTP 500: ")
    assert api.stats.requests == 1


def test_stripe_should_retry_true_is_retried_even_for_a_conflict(stripe_api, small_world):
    api = stripe_api(small_world.world)
    api.fail_next(2, status=400, should_retry="true")
    collected = run_connector(StripeConnector, settings_for(api, objects=["invoices"]))
    assert api.stats.requests == 3
    assert len(collected.events_named("Invoice Paid")) == 2


def test_retries_run_out_with_one_clear_error(stripe_api, small_world):
    api = stripe_api(small_world.world)
    api.fail_next(3, status=503)
    with pytest.raises(SourceError) as info:
        run_connector(StripeConnector, settings_for(api, objects=["disputes"], max_retries=2))
    message = str(info.value)
    assert message.startswith("stripe: GET /v1/disputes still failing after 2 retries: HTTP 503")
    assert "\n" not in message
    assert api.stats.requests == 3


def test_bad_key_gives_one_clear_line_without_the_key(stripe_api, small_world, caplog):
    api = stripe_api(small_world.world)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SourceError) as info:
        run_connector(StripeConnector, settings_for(api, api_key=BAD_KEY))
    message = str(info.value)
    assert "\n" not in message
    assert "the API key was refused" in message and "HTTP 401" in message
    assert "api_key" in message
    assert BAD_KEY not in message and BAD_KEY[-12:] not in message
    assert BAD_KEY not in caplog.text
    assert api.stats.by_status[401] >= 1 and api.stats.by_status[401] == api.stats.requests


def test_unreachable_api_is_one_line_naming_the_request():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    settings = {
        "api_key": TEST_KEY,
        "api_base": f"http://127.0.0.1:{port}",
        "max_retries": 0,
        "objects": ["charges"],
    }
    with pytest.raises(SourceError) as info:
        run_connector(StripeConnector, settings)
    message = str(info.value)
    assert message.startswith("stripe: GET /v1/charges: cannot connect to http://127.0.0.1")
    assert "\n" not in message


def test_check_reports_test_mode(stripe_api, small_world):
    api = stripe_api(small_world.world)
    connector = StripeConnector(StripeSettings(**settings_for(api)))
    assert connector.check(ctx()) == f"Stripe test mode via {api.url}: secret key accepted"
    assert api.stats.requests == 1


def test_check_reports_live_mode(stripe_api, small_world):
    api = stripe_api(small_world.world)
    connector = StripeConnector(StripeSettings(**settings_for(api, api_key=LIVE_KEY)))
    assert connector.check(ctx()).startswith("Stripe live mode via ")


def test_check_with_a_bad_key(stripe_api, small_world):
    api = stripe_api(small_world.world)
    connector = StripeConnector(StripeSettings(**settings_for(api, api_key=BAD_KEY)))
    with pytest.raises(SourceError) as info:
        connector.check(ctx())
    assert str(info.value).startswith("stripe: GET /v1/balance: the API key was refused (HTTP 401")
    assert BAD_KEY[-12:] not in str(info.value)


def test_restricted_key_check_and_missing_permission(stripe_api, small_world):
    api = stripe_api(small_world.world)
    settings = settings_for(api, api_key=RESTRICTED_KEY)
    check = StripeConnector(StripeSettings(**settings)).check(ctx())
    assert check == (
        f"Stripe test mode via {api.url}: restricted key accepted (no balance permission)"
    )
    allowed = run_connector(StripeConnector, {**settings, "objects": ["customers", "charges"]})
    assert len(allowed.people) == 5
    with pytest.raises(SourceError) as info:
        run_connector(StripeConnector, {**settings, "objects": ["refunds"]})
    assert "GET /v1/refunds: the restricted key may not read this (HTTP 403" in str(info.value)
    assert "remove the stream from objects" in str(info.value)


def test_closing_the_generator_early_stops_the_readers(stripe_api, big_world):
    api = stripe_api(big_world, latency=0.005)
    connector = StripeConnector(StripeSettings(**settings_for(api)))
    events = connector.events(ctx())
    for _ in range(150):
        next(events)
    events.close()
    readers = [t for t in threading.enumerate() if t.name.startswith("mpconnect-stripe-")]
    assert readers == []
    assert api.stats.requests < 40  # nowhere near the ~40 pages of the whole account


def _spool(records) -> None:
    """Fail on the first record, as the engine's drain loop does when the disk is full."""
    for _ in records:
        raise OSError("disk full while spooling")


def test_close_stops_the_readers_when_the_consumer_failed_mid_way(stripe_api, big_world):
    # The engine keeps the exception (its traceback holds _spool's frame, which holds the
    # suspended generator), then calls close().
    api = stripe_api(big_world, latency=0.005)
    connector = StripeConnector(StripeSettings(**settings_for(api)))
    kept: list[BaseException] = []
    try:
        _spool(connector.events(ctx()))
    except OSError as exc:
        kept.append(exc)
    finally:
        connector.close()
    readers = [t for t in threading.enumerate() if t.name.startswith("mpconnect-stripe-")]
    for thread in readers:
        thread.join(timeout=2)
    assert [t.name for t in readers if t.is_alive()] == []
    assert kept[0].__traceback__ is not None  # the generator was never closed by Python
    requests = api.stats.requests
    assert requests < 40  # nowhere near the ~40 pages of the whole account
    assert _requests_after_a_moment(api) == requests


def _requests_after_a_moment(api) -> int:
    """The server's request count once any request still in flight would have arrived."""
    threading.Event().wait(0.2)
    return api.stats.requests


def test_close_before_and_after_a_whole_run_changes_nothing(stripe_api, small_world):
    api = stripe_api(small_world.world)
    connector = StripeConnector(StripeSettings(**settings_for(api)))
    connector.close()
    events = list(connector.events(ctx()))
    connector.close()
    assert len(events) == len(
        list(StripeConnector(StripeSettings(**settings_for(api))).events(ctx()))
    )


def test_the_api_version_is_pinned(stripe_api, small_world):
    api = stripe_api(small_world.world)
    run_connector(StripeConnector, settings_for(api))
    assert set(api.stats.versions) == {"2024-06-20"}
    run_connector(StripeConnector, settings_for(api, api_version="2025-03-31.basil"))
    assert api.stats.versions["2025-03-31.basil"] == 6


def test_people_after_events_use_no_further_requests(stripe_api, small_world):
    api = stripe_api(small_world.world)
    connector = StripeConnector(StripeSettings(**settings_for(api)))
    events = list(connector.events(ctx()))
    before = api.stats.requests
    people = list(connector.people(ctx()))
    assert events and len(people) == 5
    assert api.stats.requests == before
    assert (connector.requests, connector.retries) == (before, 0)


def test_basic_auth_key_is_accepted_by_the_local_api(stripe_api, small_world):
    import requests

    api = stripe_api(small_world.world)
    answer = requests.get(f"{api.url}/v1/customers", auth=(TEST_KEY, ""), timeout=10)
    assert answer.status_code == 200
    assert len(answer.json()["data"]) == 5


def test_split_cuts_the_rest_of_a_window_in_two():
    from mpconnect_stripe.pump import EARLIEST, Window, split

    window = Window("charges", gte=1000, lt=5000, after="ch_last")
    newer, older = split(window, oldest=3000)
    assert newer == Window("charges", gte=2000, lt=5000, after="ch_last")
    assert older == Window("charges", gte=1000, lt=2000, after=None)
    assert split(Window("charges", gte=1000), oldest=1001) is None  # too narrow
    open_newer, open_older = split(Window("charges", after="ch_x"), oldest=EARLIEST + 100)
    assert open_older.gte is None and open_older.lt == open_newer.gte == EARLIEST + 50
