"""How the local Stripe API reads a list request: Stripe's query encoding, its parameter
checks and error bodies, and lists kept newest first for paging."""

from __future__ import annotations

import bisect
from typing import Any

__all__ = [
    "Listing",
    "StripeApiError",
    "created_bounds",
    "expansions",
    "invalid",
    "matches",
    "page_size",
    "parse_query",
]


#: What each list may expand (``expand[]=data.X``).
EXPANDABLE = {
    "charges": {"customer", "invoice"},
    "refunds": {"charge"},
    "disputes": {"charge"},
    "invoices": {"customer", "subscription"},
    "subscriptions": {"customer"},
    "customers": set(),
}


class StripeApiError(Exception):
    """An error answer: HTTP status, Stripe error object, extra headers."""

    def __init__(
        self, status: int, error: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(error.get("message"))
        self.status = status
        self.error = error
        self.headers = headers or {}


def invalid(
    message: str, param: str | None = None, code: str | None = None, status: int = 400
) -> StripeApiError:
    error: dict[str, Any] = {"type": "invalid_request_error", "message": message}
    if param:
        error["param"] = param
    if code:
        error["code"] = code
        error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
    return StripeApiError(status, error)


class Listing:
    """One list endpoint's objects sorted as Stripe lists them: newest first."""

    def __init__(self, objects: list[dict[str, Any]], order: dict[str, int]) -> None:
        self.items = sorted(objects, key=lambda o: (o["created"], order[o["id"]]), reverse=True)
        self.position = {obj["id"]: i for i, obj in enumerate(self.items)}
        self.neg_created = [-obj["created"] for obj in self.items]

    def created_range(self, bounds: dict[str, int]) -> range:
        """Positions whose ``created`` is within the ``gt/gte/lt/lte`` bounds."""
        lo, hi = 0, len(self.items)
        if "lte" in bounds:
            lo = max(lo, bisect.bisect_left(self.neg_created, -bounds["lte"]))
        if "lt" in bounds:
            lo = max(lo, bisect.bisect_right(self.neg_created, -bounds["lt"]))
        if "gte" in bounds:
            hi = min(hi, bisect.bisect_right(self.neg_created, -bounds["gte"]))
        if "gt" in bounds:
            hi = min(hi, bisect.bisect_left(self.neg_created, -bounds["gt"]))
        return range(lo, max(lo, hi))


def parse_query(items: Any) -> dict[str, Any]:
    """Stripe's form encoding: ``a[b]=1`` → ``{"a": {"b": "1"}}``, ``e[0]=x`` / ``e[]=x``."""
    out: dict[str, Any] = {}
    for raw_key, value in items:
        if "[" in raw_key and raw_key.endswith("]"):
            name, sub = raw_key[:-1].split("[", 1)
            if sub == "" or sub.isdigit():
                out.setdefault(name, []).append(value)
            else:
                out.setdefault(name, {})[sub] = value
        else:
            out[raw_key] = value
    return out


def page_size(value: Any) -> int:
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise invalid(f"Invalid integer: {value}", param="limit") from None
    if not 1 <= limit <= 100:
        raise invalid(
            "This value must be greater than or equal to 1 and less than or equal to 100.",
            param="limit",
        )
    return limit


def created_bounds(value: Any) -> dict[str, int]:
    if value is None:
        return {}
    if isinstance(value, str):
        value = {"gte": value, "lte": value}
    if not isinstance(value, dict):
        raise invalid("Invalid timestamp", param="created")
    bounds = {}
    for op, raw in value.items():
        if op not in ("gt", "gte", "lt", "lte"):
            raise invalid(f"Received unknown parameter: created[{op}]", param=f"created[{op}]")
        try:
            bounds[op] = int(raw)
        except ValueError:
            raise invalid(f"Invalid integer: {raw}", param=f"created[{op}]") from None
    return bounds


def expansions(value: Any, endpoint: str) -> list[str]:
    if value is None:
        return []
    paths = value if isinstance(value, list) else [value]
    fields = []
    for path in paths:
        name = path[len("data.") :] if path.startswith("data.") else None
        if name is None or name not in EXPANDABLE[endpoint]:
            raise invalid(f"This property cannot be expanded ({path}).", param="expand")
        fields.append(name)
    return fields


def matches(obj: dict[str, Any], key: str, value: str) -> bool:
    if key == "price":
        items = (obj.get("items") or {}).get("data") or []
        return any((item.get("price") or {}).get("id") == value for item in items)
    found = obj.get(key)
    if isinstance(found, dict):
        found = found.get("id")
    return found == value
