"""URLs as the HTTP client checks and shows them: loopback hosts, a URL's origin, and
query parameters whose names look secret masked or collected for redaction."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus, urlencode, urlsplit

from mpconnect.redact import SECRET_NAME


def is_loopback(host: str | None) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ``::1``)."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def origin(url: str) -> tuple[str, str, int | None]:
    """A URL's scheme, host and port (the default port when none is written)."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def secret_query_values(params: Mapping[str, Any] | None, url: str | None) -> list[str]:
    """The values of ``params`` and of ``url``'s query whose names look secret, as sent
    and as decoded, for :func:`mpconnect.redact.redact` to remove."""
    pairs = [(str(key), str(value)) for key, value in (params or {}).items()]
    query = urlsplit(url).query if url else ""
    for raw in filter(None, query.split("&")):
        key, _, value = raw.partition("=")
        pairs += [(unquote_plus(key), value), (unquote_plus(key), unquote_plus(value))]
    return [value for key, value in pairs if SECRET_NAME.search(key) and value]


def masked_url(url: str, params: Mapping[str, Any] | None) -> str:
    """``url`` with ``params`` appended, every secret-looking parameter's value ``***``."""
    shown = url
    if params:
        safe = {k: ("***" if SECRET_NAME.search(str(k)) else v) for k, v in params.items()}
        shown = f"{url}?{urlencode(safe, doseq=True)}"
    parts = urlsplit(shown)
    if parts.query:
        pairs = [p.split("=", 1) for p in parts.query.split("&")]
        query = "&".join(
            f"{p[0]}=***" if len(p) == 2 and SECRET_NAME.search(p[0]) else "=".join(p)
            for p in pairs
        )
        shown = parts._replace(query=query).geturl()
    return shown
