"""Stripe's own boilerplate in error messages, which misleads when the server is not Stripe.

stripe-python ends many of its messages with advice such as "If this problem persists, let
us know at support@stripe.com." With ``api_base`` pointing at another server (a local
stand-in, a mock, a proxy), that advice sends the user to the wrong people, so mpconnect
drops those sentences; the rest of the message (what failed, the network error) stays.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["is_stripe_host", "without_stripe_support"]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def is_stripe_host(api_base: str | None) -> bool:
    """True when requests go to Stripe itself: no ``api_base``, or a ``stripe.com`` host."""
    if api_base is None:
        return True
    host = (urlsplit(api_base).hostname or "").lower()
    return host == "stripe.com" or host.endswith(".stripe.com")


def without_stripe_support(text: str) -> str:
    """``text`` without the sentences that mention support@stripe.com."""
    if "support@stripe.com" not in text:
        return text
    kept = [part for part in _SENTENCE_END.split(text) if "support@stripe.com" not in part]
    return " ".join(kept)
