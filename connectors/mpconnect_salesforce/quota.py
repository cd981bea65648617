"""The guard on the org's daily API quota.

A run may make at most ``max_api_share`` of the org's daily API requests (the total
Salesforce reports in the ``Sforce-Limit-Info`` header, the one simple-salesforce parses
into ``sf.api_usage``). The guard stops the run with a clear error *before* the call that
would pass that share, and before extracting anything when the run's estimate already
would.
"""

from __future__ import annotations

import math
import threading

from mpconnect_salesforce.errors import QuotaExceeded

__all__ = ["QuotaGuard", "parse_limit_info"]


def parse_limit_info(header: str | None) -> tuple[int, int] | None:
    """``(used, total)`` from a ``Sforce-Limit-Info`` header such as ``api-usage=18/5000``."""
    if not header:
        return None
    from simple_salesforce import Salesforce

    usage = Salesforce.parse_api_usage(header).get("api-usage")
    if usage is None:
        return None
    return usage.used, usage.total


class QuotaGuard:
    """Counts the run's API calls and stops before they pass ``share`` of the daily quota.

    :param share: the largest share of the org's daily quota the run may use (0 to 1).
    """

    def __init__(self, share: float) -> None:
        self.share = share
        self.calls = 0
        self.used: int | None = None
        self.total: int | None = None
        self._lock = threading.Lock()

    @property
    def allowed(self) -> int | None:
        """How many calls the run may make, once the org's quota is known."""
        return None if self.total is None else math.floor(self.share * self.total)

    def describe(self) -> str:
        """The org's usage as last reported, such as ``"123/15000"``."""
        if self.total is None:
            return "not reported yet"
        return f"{self.used}/{self.total}"

    def before_call(self) -> None:
        """Raise QuotaExceeded when one more call would pass the allowed share."""
        allowed = self.allowed
        if allowed is not None and self.calls + 1 > allowed:
            raise QuotaExceeded(
                f"stopping before Salesforce API call {self.calls + 1}: this run may use at "
                f"most max_api_share = {self.share:g} of the org's daily API quota of "
                f"{self.total} requests ({allowed} calls); the org has used "
                f"{self.describe()} today. Raise max_api_share, use Bulk 2.0 "
                "(use_bulk = true), or run later"
            )

    def after_call(self, limit_info: str | None) -> None:
        """Count a call the server answered and note the usage it reported."""
        with self._lock:
            self.calls += 1
            parsed = parse_limit_info(limit_info)
            if parsed is not None:
                self.used, self.total = parsed

    def check_plan(self, estimate: int, detail: str) -> None:
        """Raise QuotaExceeded before extracting when the run's estimate will not fit.

        :param estimate: the API calls the rest of the run needs.
        :param detail: what the estimate is made of, for the message.
        """
        allowed = self.allowed
        if allowed is None or self.total is None or self.used is None:
            return
        if self.calls + estimate > allowed:
            raise QuotaExceeded(
                f"not starting: this run needs about {estimate} more Salesforce API calls "
                f"({detail}) but max_api_share = {self.share:g} of the org's daily quota of "
                f"{self.total} allows {allowed}, and {self.calls} are spent. Raise "
                "max_api_share, use Bulk 2.0 (use_bulk = true), or read fewer objects"
            )
        remaining = self.total - self.used
        if estimate > remaining:
            raise QuotaExceeded(
                f"not starting: this run needs about {estimate} Salesforce API calls "
                f"({detail}) but the org has only {remaining} of its {self.total} daily "
                "requests left; run later"
            )
