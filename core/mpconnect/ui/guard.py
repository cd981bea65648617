"""Who may see the pages, and what a page may do: the token, the CSRF check of "run now"
and the headers every answer carries."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from typing import Any

TOKEN_ENV = "MPCONNECT_UI_TOKEN"
COOKIE = "mpconnect_ui"
#: Paths answered without the token: a load balancer's health check reveals nothing.
OPEN_PATHS = frozenset({"/healthz"})
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def is_loopback(host: str) -> bool:
    """True when ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_matches(given: str | None, token: str) -> bool:
    """Compare ``given`` with ``token`` in constant time (digests of equal length)."""
    if not given:
        return False
    return hmac.compare_digest(
        hashlib.sha256(given.encode()).digest(), hashlib.sha256(token.encode()).digest()
    )


def presented_token(request: Any) -> str | None:
    """The token a request carries: ``Authorization: Bearer``, the cookie, or ``?token=``."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return str(header[7:].strip())
    cookie = request.cookies.get(COOKIE)
    if cookie:
        return str(cookie)
    query = request.query.get("token")
    return str(query) if query else None


class CsrfGuard:
    """Form tokens for "run now": an HMAC of the form's purpose under a key that lives as
    long as the server, checked with the request's ``Origin`` and ``Sec-Fetch-Site``."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def form_token(self, purpose: str) -> str:
        """The hidden field's value for a form that does ``purpose``."""
        return hmac.new(self._key, purpose.encode(), hashlib.sha256).hexdigest()

    def refusal(self, request: Any, purpose: str, form_value: str | None) -> str | None:
        """Why the POST must be refused (None: it may go on)."""
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None and site not in ("same-origin", "none"):
            return f"a cross-site request (Sec-Fetch-Site: {site})"
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            return "a request from another origin"
        if not form_value or not hmac.compare_digest(form_value, self.form_token(purpose)):
            return "the form's token is missing or wrong; reload the page"
        return None
