"""Stripe amounts: from the currency's minor units (what the API sends) to major units."""

from __future__ import annotations

from decimal import Decimal

# https://docs.stripe.com/currencies#zero-decimal and #three-decimal
ZERO_DECIMAL = frozenset(
    {
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    }
)
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})


def decimals(currency: str | None) -> int:
    """Return how many decimal places Stripe's minor units of ``currency`` stand for."""
    code = (currency or "").lower()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def to_major(amount: int | float | None, currency: str | None) -> float | None:
    """Convert an amount in minor units (cents) to major units: ``1999, "usd"`` → ``19.99``.

    ``None`` stays ``None``; zero-decimal currencies such as ``jpy`` are unchanged.
    """
    if amount is None:
        return None
    places = decimals(currency)
    return float(Decimal(amount).scaleb(-places).quantize(Decimal(1).scaleb(-places)))
