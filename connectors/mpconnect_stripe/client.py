"""Stripe requests: one shared rate limit, retries, pagination, and clear errors.

Every request of every stream goes through the account's :class:`mpconnect.SharedBucket`,
retries included: one budget (default 90 % of Stripe's 100 requests/s live, 25 test) that
every stream, partition and run reading the account on this machine shares, cut on each
429 and recovering additively. The official client is built with
``max_network_retries=0`` so that no request bypasses the limiter: stripe-python would
retry 5xx and ``Stripe-Should-Retry: true`` itself but never a plain 429, so mpconnect does
all retrying, with backoff:

- 429 (rate limit, lock timeout), 5xx, 409 and dropped connections are retried, unless
  the response says ``Stripe-Should-Retry: false``;
- any error saying ``Stripe-Should-Retry: true`` is retried;
- everything else (401 bad key, 403 missing permission, 400/404) fails at once with one
  line naming the request;
- a server that cannot be reached (connection refused, a name that does not resolve) is
  retried only twice, quickly, and the error names the source's ``api_base`` key.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from mpconnect import (
    SharedUnreachableRetries,
    SourceError,
    attempts_of,
    call_with_retries,
    log_retry,
    mark_unreachable,
    parse_retry_after,
    retry_budget,
    shared_bucket,
    unreachable_message,
    unreachable_reason,
    why_unreachable,
)
from mpconnect_stripe.boilerplate import is_stripe_host, without_stripe_support
from mpconnect_stripe.settings import StripeSettings

__all__ = ["StripeReader", "StripeRequestError", "redact"]

PAGE_SIZE = 100
_KEY_PATTERN = re.compile(r"\b([sprw]k|rk)_(live|test)_[A-Za-z0-9*]+")
#: What each stream lists and expands so every event can be attributed without a lookup.
LIST_PARAMS: dict[str, dict[str, Any]] = {
    "customers": {},
    "charges": {},
    "refunds": {"expand": ["data.charge"]},
    "invoices": {},
    "subscriptions": {"status": "all"},
    "disputes": {"expand": ["data.charge"]},
}


class RetryableStripeError(Exception):
    """A Stripe failure worth retrying (carries the server's Retry-After, if any)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StripeRequestError(SourceError):
    """Stripe refused a request; ``status`` is the HTTP status (0 when none)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class Stopped(Exception):
    """The run was abandoned while a request was waiting to be retried."""


def redact(text: str) -> str:
    """Replace anything shaped like a Stripe key with its prefix: ``sk_test_…``."""
    return _KEY_PATTERN.sub(lambda m: f"{m.group(1)}_{m.group(2)}_…", text)


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    for key, value in dict(headers).items():
        if key.lower() == name:
            return str(value).strip().lower()
    return None


def _describe_error(exc: Exception, *, stripe_host: bool = True) -> str:
    """One line: the HTTP status, Stripe's message, no key; without Stripe's support
    boilerplate when the server is not Stripe (``stripe_host`` False)."""
    status = getattr(exc, "http_status", None)
    message = getattr(exc, "user_message", None) or str(exc) or type(exc).__name__
    text = " ".join((f"HTTP {status}: {message}" if status else message).split())
    if not stripe_host:
        text = without_stripe_support(text)
    return redact(text)


class StripeReader:
    """Reads Stripe lists through the official client, within one shared rate limit.

    :param settings: the source's validated settings.
    :param log: where retries are reported.
    :param stop: when set, waiting retries give up (the run was abandoned).
    :param url_key: the configuration key of ``api_base``, named when the server cannot
        be reached (``sources.NAME.settings.api_base``).
    :param count_retry: called for each retry, so the run's summary counts it.
    """

    def __init__(
        self,
        settings: StripeSettings,
        log: logging.Logger,
        stop: threading.Event | None = None,
        *,
        url_key: str | None = None,
        count_retry: Callable[..., None] | None = None,
    ) -> None:
        import stripe

        self.settings = settings
        self.url_key = url_key if settings.api_base else None
        self.count_retry = count_retry
        # The streams' workers call one server: when it is unreachable, a few retries in all.
        self._unreachable_retries = SharedUnreachableRetries()
        self.log = log
        self.stop = stop or threading.Event()
        rate = self.rate = settings.request_rate
        # One budget per account (the key and the server, hashed), shared by every stream,
        # partition and run on this machine. A tenth of a second's worth at once, so a
        # worker that comes late does not waste the token it missed.
        self.bucket = shared_bucket(
            "stripe",
            f"{settings.api_base or 'api.stripe.com'} {settings.api_key.get_secret_value()}",
            [rate],
            burst=max(1.0 / rate, min(0.1, 10.0 / rate)),
        )
        self._stripe = stripe
        self.client = stripe.StripeClient(
            settings.api_key.get_secret_value(),
            base_addresses={"api": settings.api_base} if settings.api_base else None,
            stripe_version=settings.api_version,
            max_network_retries=0,
        )
        self._stripe_host = is_stripe_host(settings.api_base)
        self.requests = 0
        self.retries = 0
        self._count_lock = threading.Lock()
        # When the last second's worth of requests were made, to tell the rate in use.
        self._sent: deque[float] = deque(maxlen=max(5, int(rate)))

    def __repr__(self) -> str:
        return f"<StripeReader {self.settings.api_base or 'api.stripe.com'}>"

    def saturated(self) -> bool:
        """True when recent requests already use 95 % of the rate limit: more concurrency
        would only queue behind the limiter."""
        with self._count_lock:
            sent = self._sent
            if len(sent) < (sent.maxlen or 0):
                return False
            span = sent[-1] - sent[0]
        return span * self.rate <= (len(sent) - 1) * 1.05

    def _describe(self, exc: Exception) -> str:
        return _describe_error(exc, stripe_host=self._stripe_host)

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise Stopped("run abandoned")

    def _on_retry(self, what: str) -> Callable[[BaseException, int, float], None]:
        def report(exc: BaseException, attempt: int, wait: float) -> None:
            with self._count_lock:
                self.retries += 1
            if self.count_retry is not None:
                self.count_retry(exc, attempt, wait)
            log_retry(
                self.log,
                f"stripe: {what}",
                exc,
                attempt,
                retry_budget(exc, self.settings.max_retries),
                wait,
            )

        return report

    def call(self, what: str, func: Callable[[], Any]) -> Any:
        """Make one request with the shared rate limit and retries.

        :param what: names the request in messages, such as ``"GET /v1/charges"``.
        :raises SourceError: with one clear line when Stripe refuses or retries run out.
        """
        stripe = self._stripe

        def attempt() -> Any:
            if self.stop.is_set():
                raise Stopped("run abandoned")
            wait = self.bucket.take(1)
            if wait > 0:
                self._sleep(wait)
            with self._count_lock:
                self.requests += 1
                self._sent.append(time.monotonic())
            try:
                return func()
            except stripe.APIConnectionError as exc:
                url = self.settings.api_base or "https://api.stripe.com"
                unreachable = why_unreachable(exc, url)
                if unreachable is not None:
                    raise mark_unreachable(
                        RetryableStripeError(
                            unreachable_message("", url, unreachable, self.url_key)
                        ),
                        unreachable,
                    ) from exc
                if getattr(exc, "should_retry", True) is False:
                    raise
                raise RetryableStripeError(self._describe(exc)) from exc
            except stripe.StripeError as exc:
                should_retry = _header(exc.headers, "stripe-should-retry")
                status = exc.http_status or 0
                if should_retry == "true" or (
                    should_retry != "false" and (status == 429 or status == 409 or status >= 500)
                ):
                    retry_after = parse_retry_after(_header(exc.headers, "retry-after"))
                    if status == 429 and getattr(exc, "code", None) != "lock_timeout":
                        self.bucket.throttled(retry_after)
                    raise RetryableStripeError(self._describe(exc), retry_after) from exc
                raise

        try:
            return call_with_retries(
                attempt,
                max_retries=self.settings.max_retries,
                retry_on=(RetryableStripeError,),
                on_retry=self._on_retry(what),
                sleep=self._sleep,
                shared_unreachable=self._unreachable_retries,
            )
        except RetryableStripeError as exc:
            if unreachable_reason(exc) is not None:
                attempts = attempts_of(exc) or retry_budget(exc, self.settings.max_retries) + 1
                raise StripeRequestError(
                    f"stripe: {what}: {exc} (gave up after {attempts} attempt"
                    f"{'s' if attempts != 1 else ''})"
                ) from None
            raise StripeRequestError(
                f"stripe: {what} still failing after {self.settings.max_retries} retries: {exc}"
            ) from None
        except stripe.AuthenticationError as exc:
            raise StripeRequestError(
                f"stripe: {what}: the API key was refused ({self._describe(exc)}); "
                "check the source's api_key setting",
                401,
            ) from None
        except stripe.PermissionError as exc:
            raise StripeRequestError(
                f"stripe: {what}: the restricted key may not read this "
                f"({self._describe(exc)}); grant read access or remove the stream from objects",
                403,
            ) from None
        except stripe.StripeError as exc:
            raise StripeRequestError(
                f"stripe: {what}: {self._describe(exc)}", exc.http_status or 0
            ) from None

    def list_page(
        self,
        stream: str,
        *,
        gte: int | None = None,
        lt: int | None = None,
        after: str | None = None,
        limit: int = PAGE_SIZE,
    ) -> tuple[list[dict[str, Any]], bool]:
        """Fetch one page (``limit``: 100 objects) of a list endpoint, newest first, as dicts.

        Read with ``StripeClient.raw_request``, which authenticates, encodes and raises
        errors exactly as the typed services do but leaves the JSON as dicts: building
        ``StripeObject`` trees costs about 0.5 ms per charge, which under the GIL would
        cap all streams together below Stripe's own rate limit.

        :param gte: only objects created at or after this epoch second.
        :param lt: only objects created before this epoch second.
        :param after: the ``starting_after`` cursor: the last id of the previous page.
        :returns: the page's objects and Stripe's ``has_more``.
        """
        params: dict[str, Any] = {"limit": limit, **LIST_PARAMS[stream]}
        created = {k: v for k, v in (("gte", gte), ("lt", lt)) if v is not None}
        if created:
            params["created"] = created
        if after:
            params["starting_after"] = after
        path = f"/v1/{stream}"
        page = self.call(f"GET {path}", lambda: self.client.raw_request("get", path, **params))
        data = page.data
        return list(data.get("data") or []), bool(data.get("has_more"))

    def events_page(
        self, *, gte: int | None, after: str | None, types: list[str] | None, limit: int = PAGE_SIZE
    ) -> tuple[list[dict[str, Any]], bool]:
        """Fetch one page of ``GET /v1/events`` (newest first) as plain dicts.

        :param gte: only events created at or after this epoch second.
        :param after: the ``starting_after`` cursor: the last id of the previous page.
        :param types: only events of these types (at most 20), or all.
        :returns: the page's events and Stripe's ``has_more``.
        """
        params: dict[str, Any] = {"limit": limit}
        if gte is not None:
            params["created"] = {"gte": gte}
        if after:
            params["starting_after"] = after
        if types:
            params["types"] = types
        page = self.call(
            "GET /v1/events", lambda: self.client.raw_request("get", "/v1/events", **params)
        )
        return list(page.data.get("data") or []), bool(page.data.get("has_more"))

    def retrieve(self, stream: str, object_id: str) -> dict[str, Any]:
        """Fetch one object of a list by id, as a plain dict."""
        path = f"/v1/{stream}/{object_id}"
        return dict(
            self.call(f"GET /v1/{stream}/…", lambda: self.client.raw_request("get", path)).data
        )

    def check(self) -> str:
        """Verify the key with one cheap call and describe the account's mode.

        :raises SourceError: with one line when the key is refused.
        """
        where = self.settings.api_base or "api.stripe.com"
        mode = self.settings.mode
        kind = (
            "restricted key"
            if self.settings.api_key.get_secret_value().startswith("rk_")
            else "secret key"
        )
        try:
            balance = self.call("GET /v1/balance", lambda: self.client.v1.balance.retrieve())
        except StripeRequestError as exc:
            if exc.status != 403:
                raise
            return f"Stripe {mode} mode via {where}: {kind} accepted (no balance permission)"
        mode = "live" if balance.to_dict().get("livemode") else "test"
        return f"Stripe {mode} mode via {where}: {kind} accepted"
