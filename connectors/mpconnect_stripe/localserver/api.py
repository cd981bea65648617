"""A local Stripe API on 127.0.0.1 that answers as Stripe does: ``mpconnect serve stripe``.

The same server runs the connector's tests and benchmarks. Serves a
:class:`~mpconnect_stripe.localserver.world.World` on the endpoints the connector uses::

    GET /v1/customers  /v1/charges  /v1/refunds  /v1/invoices  /v1/subscriptions
    GET /v1/disputes   /v1/balance  /v1/events  /v1/<list>/<id>

like Stripe: list objects (``object``, ``data``, ``has_more``, ``url``) newest first with
``limit`` (1-100, default 10), ``starting_after`` / ``ending_before`` cursors, ``created``
filters (``created=T`` or ``created[gt|gte|lt|lte]=T``), ``expand[]``, subscriptions
without the canceled ones unless ``status=all``; one object by id; the account's
events of the last 30 days (``/v1/events``, see :mod:`.events`, with ``type`` or
``types[]``); keys as ``Authorization: Bearer KEY`` or
HTTP Basic with the key as user name; Stripe's error bodies (``{"error": {"type",
"message", ...}}``) for a missing or bad key (401), a restricted key without the
permission (403), unknown parameters (400) and unknown URLs (404); a ``Request-Id``
header on every answer.

Faults on demand: a request rate limit (429 with Stripe's ``rate_limit`` error once
exceeded), a 429 storm for a while, and the next N requests failing with a status (500
by default) and an optional ``Stripe-Should-Retry`` header.

Users start it with ``mpconnect serve stripe``; benchmarks run it with its fault knobs::

    python -m mpconnect_stripe.localserver.api --customers 500 --rate 25
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import itertools
import sys
import threading
import time
from typing import Any

import orjson
from aiohttp import web

from mpconnect import BackgroundServer

from .events import list_events
from .generate import generate
from .listing import (
    Listing,
    StripeApiError,
    created_bounds,
    expansions,
    invalid,
    matches,
    page_size,
    parse_query,
)
from .meter import Stats, TokenBucket
from .world import World, from_fixture

TEST_KEY = "sk_test_51MpcLocal0000TestKeyAbcdEfgh"
LIVE_KEY = "sk_live_51MpcLocal0000LiveKeyAbcdEfgh"
RESTRICTED_KEY = "rk_test_51MpcLocal0000RestrictedKey"
LIST_ENDPOINTS = ("customers", "charges", "refunds", "invoices", "subscriptions", "disputes")
_OBJECT_NAMES = {
    "customers": "customer",
    "charges": "charge",
    "refunds": "refund",
    "invoices": "invoice",
    "subscriptions": "subscription",
    "disputes": "dispute",
}
_FILTERS = {
    "charges": {"customer"},
    "invoices": {"customer", "status", "subscription"},
    "subscriptions": {"customer", "status", "price"},
    "refunds": {"charge"},
    "disputes": {"charge"},
    "customers": {"email"},
}
_ID_PREFIXES: dict[str, tuple[str, ...]] = {
    "customers": ("cus_",),
    "charges": ("ch_", "py_"),
    "refunds": ("re_",),
    "invoices": ("in_",),
    "subscriptions": ("sub_",),
    "disputes": ("dp_",),
}
_PAGING = {"limit", "starting_after", "ending_before", "created"}
_HIDDEN_BY_DEFAULT = {"subscriptions": {"canceled"}}


def _masked(key: str) -> str:
    prefix = key[: key.find("_", 3) + 1] if key.count("_") >= 2 else ""
    return f"{prefix}{'*' * max(0, len(key) - len(prefix) - 4)}{key[-4:]}"


class StripeAPI:
    """The local Stripe API over one world.

    :param world: the account to serve.
    :param keys: accepted keys and their mode (``"test"`` or ``"live"``).
    :param restricted: for restricted keys, the list endpoints they may read.
    :param rate_limit: requests per second before 429s (None: unlimited).
    :param latency: seconds each answer is delayed, as a network would.
    """

    def __init__(
        self,
        world: World,
        *,
        keys: dict[str, str] | None = None,
        restricted: dict[str, set[str]] | None = None,
        rate_limit: float | None = None,
        latency: float = 0.0,
    ) -> None:
        self.world = world
        self.keys = keys or {TEST_KEY: "test", LIVE_KEY: "live", RESTRICTED_KEY: "test"}
        self.restricted = (
            restricted if restricted is not None else {RESTRICTED_KEY: {"customers", "charges"}}
        )
        self.latency = latency
        self.stats = Stats()
        self._bucket = TokenBucket(rate_limit) if rate_limit else None
        self._storm_until = 0.0
        self._failures: list[tuple[int, str | None]] = []
        self._lock = threading.Lock()
        self._request_ids = itertools.count(1)
        self._listings = self._sorted_lists()
        self._listed_version = world.version
        self.server: BackgroundServer | None = None

    def _sorted_lists(self) -> dict[str, Listing]:
        lists = self.world.lists().items()
        return {name: Listing(objects, self.world.order) for name, objects in lists}

    # faults ------------------------------------------------------------------------

    def set_rate_limit(self, rate: float | None, burst: float | None = None) -> None:
        """Answer 429 once more than ``rate`` requests per second arrive (None: no limit)."""
        with self._lock:
            self._bucket = TokenBucket(rate, burst) if rate else None

    def storm(self, seconds: float) -> None:
        """Answer every request with 429 for the next ``seconds``."""
        with self._lock:
            self._storm_until = time.monotonic() + seconds

    def fail_next(self, count: int, status: int = 500, should_retry: str | None = None) -> None:
        """Fail the next ``count`` requests with ``status`` (and ``Stripe-Should-Retry``)."""
        with self._lock:
            self._failures.extend([(status, should_retry)] * count)

    # serving -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL to give as ``api_base``."""
        assert self.server is not None, "call start() first"
        return self.server.url

    def start(self, host: str = "127.0.0.1", port: int = 0) -> StripeAPI:
        """Serve from a background thread on ``host:port`` (0: a free port)."""
        self.server = BackgroundServer(self.app(), host=host, port=port).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self.server is not None:
            self.server.stop()

    def __enter__(self) -> StripeAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def app(self) -> web.Application:
        """The aiohttp application (and ``GET /_local/stats``, which Stripe has not)."""
        app = web.Application()
        app.router.add_get("/_local/stats", self._stats)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _stats(self, request: web.Request) -> web.Response:
        with self._lock:
            served = self.stats.served_at
            body = {
                "requests": self.stats.requests,
                "by_status": {str(k): v for k, v in self.stats.by_status.items()},
                "first_served": served[0] if served else None,
                "last_served": served[-1] if served else None,
            }
        return web.json_response(body)

    async def _handle(self, request: web.Request) -> web.Response:
        request_id = f"req_{next(self._request_ids):014d}"
        with self._lock:
            self.stats.requests += 1
            self.stats.by_path[request.path] += 1
            self.stats.versions[request.headers.get("Stripe-Version", "")] += 1
            self.stats.queries.append((request.path, request.query_string))
        if self.latency:
            await asyncio.sleep(self.latency)
        try:
            body = self._answer(request)
            status, headers = 200, {}
        except StripeApiError as exc:
            body, status, headers = {"error": exc.error}, exc.status, exc.headers
        with self._lock:
            self.stats.by_status[status] += 1
            if status == 200:
                self.stats.served_at.append(time.monotonic())
        return web.Response(
            body=orjson.dumps(body),
            status=status,
            content_type="application/json",
            headers={"Request-Id": request_id, "Stripe-Version": "2024-06-20", **headers},
        )

    def _answer(self, request: web.Request) -> dict[str, Any]:
        key = self._authenticate(request)
        self._inject_faults()
        path = request.path.rstrip("/")
        if request.method != "GET" or not path.startswith("/v1/"):
            raise self._unrecognized(request)
        endpoint = path[len("/v1/") :]
        if endpoint == "balance":
            self._authorize(key, "balance")
            return from_fixture("balance", livemode=self.keys[key] == "live")
        if endpoint == "events":
            self._authorize(key, "events")
            return list_events(self.world.events, parse_query(request.query.items()))
        name, _, object_id = endpoint.partition("/")
        if name not in LIST_ENDPOINTS or "/" in object_id:
            raise self._unrecognized(request)
        self._authorize(key, name)
        if object_id:
            return self._retrieve(name, object_id)
        return self._list(endpoint, request)

    @staticmethod
    def _unrecognized(request: web.Request) -> StripeApiError:
        return invalid(
            f"Unrecognized request URL ({request.method}: {request.path}). Please see "
            "https://stripe.com/docs or we can help at https://support.stripe.com/.",
            status=404,
        )

    def _authenticate(self, request: web.Request) -> str:
        header = request.headers.get("Authorization", "")
        key = ""
        if header.startswith("Bearer "):
            key = header[len("Bearer ") :].strip()
        elif header.startswith("Basic "):
            try:
                key = base64.b64decode(header[len("Basic ") :]).decode().split(":", 1)[0]
            except (ValueError, UnicodeDecodeError):
                key = ""
        if not key:
            raise invalid(
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for "
                "details, or we can help at https://support.stripe.com/.",
                status=401,
            )
        if key not in self.keys:
            raise invalid(f"Invalid API Key provided: {_masked(key)}", status=401)
        return key

    def _authorize(self, key: str, endpoint: str) -> None:
        allowed = self.restricted.get(key)
        if allowed is None or endpoint in allowed:
            return
        raise invalid(
            f"The provided key '{_masked(key)}' does not have the required permissions for "
            f"this endpoint on account 'acct_1MpcLocal'. Having the 'rak_{endpoint}_read' "
            "permission would allow this request to continue.",
            status=403,
        )

    def _inject_faults(self) -> None:
        with self._lock:
            if self._failures:
                status, should_retry = self._failures.pop(0)
                headers = {"Stripe-Should-Retry": should_retry} if should_retry else {}
                raise StripeApiError(
                    status,
                    {
                        "type": "api_error",
                        "message": "An unknown error occurred; please try again.",
                    },
                    headers,
                )
            storming = time.monotonic() < self._storm_until
            if storming or (self._bucket is not None and not self._bucket.take()):
                raise invalid(
                    "Request rate limit exceeded. Learn more about rate limits here "
                    "https://stripe.com/docs/rate-limits.",
                    code="rate_limit",
                    status=429,
                )

    # lists -------------------------------------------------------------------------

    def _list(self, endpoint: str, request: web.Request) -> dict[str, Any]:
        query = parse_query(request.query.items())
        allowed = _PAGING | _FILTERS[endpoint] | {"expand"}
        for name in query:
            if name not in allowed:
                raise invalid(f"Received unknown parameter: {name}", param=name)
        limit = page_size(query.get("limit", "10"))
        if self._listed_version != self.world.version:  # the account changed: sort again
            self._listings = self._sorted_lists()
            self._listed_version = self.world.version
        listing = self._listings[endpoint]
        positions: range | list[int] = listing.created_range(created_bounds(query.get("created")))
        hidden = set() if query.get("status") == "all" else _HIDDEN_BY_DEFAULT.get(endpoint, set())
        filters = {k: v for k, v in query.items() if k in _FILTERS[endpoint] and k != "status"}
        if "status" in query and query["status"] != "all":
            filters["status"] = query["status"]
        if hidden or filters:
            positions = [
                i
                for i in positions
                if listing.items[i].get("status") not in hidden
                and all(matches(listing.items[i], k, v) for k, v in filters.items())
            ]
        after, before = query.get("starting_after"), query.get("ending_before")
        if after and before:
            raise invalid(
                "You may only specify one of these parameters: starting_after, ending_before.",
                param="ending_before",
            )
        noun = _OBJECT_NAMES[endpoint]
        if after:
            cursor = self._cursor(listing, after, "starting_after", noun)
            start = bisect.bisect_right(positions, cursor)
            chosen = positions[start : start + limit]
            has_more = start + limit < len(positions)
        elif before:
            cursor = self._cursor(listing, before, "ending_before", noun)
            end = bisect.bisect_left(positions, cursor)
            chosen = positions[max(0, end - limit) : end]
            has_more = end - limit > 0
        else:
            chosen = positions[:limit]
            has_more = limit < len(positions)
        expand = expansions(query.get("expand"), endpoint)
        data = [self._expand(listing.items[i], expand) for i in chosen]
        return {"object": "list", "data": data, "has_more": has_more, "url": f"/v1/{endpoint}"}

    def _retrieve(self, endpoint: str, object_id: str) -> dict[str, Any]:
        obj = self.world.find(object_id)
        if obj is None or not object_id.startswith(_ID_PREFIXES[endpoint]):
            noun = _OBJECT_NAMES[endpoint]
            raise invalid(
                f"No such {noun}: '{object_id}'", param="id", code="resource_missing", status=404
            )
        return obj

    @staticmethod
    def _cursor(listing: Listing, object_id: str, param: str, noun: str) -> int:
        position = listing.position.get(object_id)
        if position is None:
            raise invalid(
                f"No such {noun}: '{object_id}'", param=param, code="resource_missing", status=404
            )
        return position

    def _expand(self, obj: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        if not fields:
            return obj
        copy = dict(obj)
        for name in fields:
            target = copy.get(name)
            if isinstance(target, str):
                copy[name] = self.world.find(target) or target
        return copy


def main() -> None:
    """Serve a generated world until interrupted (or until stdin closes, with --until-eof)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument(
        "--charges-per-customer",
        type=int,
        nargs=2,
        default=(0, 3),
        metavar=("MIN", "MAX"),
        help="one-off charges of each customer",
    )
    parser.add_argument("--rate", type=float, default=None, help="requests/s before 429")
    parser.add_argument("--burst", type=float, default=None, help="429 after this many at once")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to answers")
    parser.add_argument("--port", type=int, default=12111, help="0 picks a free port")
    parser.add_argument("--until-eof", action="store_true", help="stop when stdin closes")
    args = parser.parse_args()
    world = generate(args.seed, args.customers, one_off_charges=tuple(args.charges_per_customer))
    api = StripeAPI(world, latency=args.latency)
    if args.rate:
        api.set_rate_limit(args.rate, args.burst)
    api.start(port=args.port)
    counts = " ".join(f"{name}={len(objects)}" for name, objects in world.lists().items())
    print(f"{api.url} key={TEST_KEY} {counts}", flush=True)
    if args.until_eof:
        sys.stdin.read()
        api.stop()
        return
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        api.stop()


if __name__ == "__main__":
    main()
