"""One redactor for every message mpconnect stores or shows.

Errors from connectors and HTTP clients may carry credentials: an API key in a URL, a
password in a query string, an ``Authorization`` header in a repr. :func:`redact` takes
them out of a text before it reaches stderr, a log line, the run ledger or a JSON
listing. It removes

- the values of the configured secrets (``SecretStr`` settings of connectors,
  ``[mixpanel] secret`` and ``service_account_secret``, ``${NAME}`` references under a
  key that names a secret), which :func:`remember_secret` records as the configuration
  is read, and any further values given to the call;
- the known shapes of credentials: Stripe keys (``sk_live_…``, ``sk_test_…``,
  ``rk_live_…``, ``whsec_…``), ``Bearer …`` and Basic credentials, the password of a
  ``scheme://user:password@host`` URL, and the value of a ``name=value`` pair or a
  quoted ``'name': 'value'`` pair whose name looks secret (``password=``, ``token=``,
  ``api_key``, ``Authorization``, ...).

Each is replaced by ``***``.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

__all__ = [
    "MASK",
    "SECRET_NAME",
    "forget_secrets",
    "redact",
    "remember_secret",
    "remember_secrets_of",
]

MASK = "***"
#: Names of parameters, settings and headers whose values are secret.
SECRET_NAME = re.compile(
    r"key|token|secret|password|passwd|pwd|auth(?!ors?(?:\b|_))|credential|signature|sig$"
    r"|session|cookie",
    re.IGNORECASE,
)
#: Configured secrets shorter than this are not searched for in every text: a two-letter
#: "secret" would mask pieces of ordinary words. The shapes below still apply.
MIN_SECRET_LENGTH = 4

_STRIPE_KEY = re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]+|\bwhsec_[A-Za-z0-9+/=]+")
_BEARER = re.compile(r"\b(Bearer)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_BASIC = re.compile(r"\b(Basic)\s+([A-Za-z0-9+/]{4,}={0,2})", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@?#]*):[^\s@/?#]+@")
_QUOTED_PAIR = re.compile(
    r"""(?P<q>['"])(?P<name>[\w.-]+)(?P=q)(?P<sep>\s*[:=]\s*)(?P<v>['"])(?P<value>.*?)(?P=v)"""
)
_PLAIN_PAIR = re.compile(
    r"""(?<![\w.-])(?P<name>[\w.-]+)=(?P<q>['"]?)(?P<value>[^\s&#'",;()}\]]++)(?!\()"""
)
#: ``Authorization: Bearer abc`` inside a line (the scheme word is masked with the token).
_HEADER_PAIR = re.compile(
    r"(?i)(?<![\w-])(?P<name>(?:proxy-)?authorization|x-api-key|api-key|x-auth-token)"
    r"(?P<sep>:[ \t]*)(?P<value>(?:[A-Za-z]+[ \t]+)?[^\s'\",;)}\]]+)"
)
_HEADER_LINE = re.compile(
    r"(?im)^(?P<name>(?:proxy-)?authorization|cookie)(?P<sep>:[ \t]*)"
    r"(?P<value>[^\r\n]+)"
)

_lock = threading.Lock()
_secrets: set[str] = set()
_ordered: tuple[str, ...] = ()


def remember_secret(value: str | None) -> None:
    """Record a secret's value: :func:`redact` removes it from every text from now on.

    Values shorter than :data:`MIN_SECRET_LENGTH` are not recorded (see there).
    """
    global _ordered
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        _ordered = _by_length(_secrets)


def remember_secrets_of(value: object) -> None:
    """Record every ``SecretStr`` inside ``value`` (a settings model, a list, a dict)."""
    from pydantic import BaseModel, SecretStr

    if isinstance(value, SecretStr):
        remember_secret(value.get_secret_value())
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            remember_secrets_of(getattr(value, name, None))
    elif isinstance(value, dict):
        for item in value.values():
            remember_secrets_of(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            remember_secrets_of(item)


def forget_secrets() -> None:
    """Forget every recorded secret (for tests that need a clean start)."""
    global _ordered
    with _lock:
        _secrets.clear()
        _ordered = ()


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """Return ``text`` without the recorded secrets, ``extra`` values and known shapes.

    :param extra: further secret values to remove (a client's own header values).
    """
    if not text:
        return text
    values = _ordered
    more = [value for value in extra if value]
    if more:
        values = _by_length({*values, *more})
    for value in values:
        text = _replace_value(text, value)
    text = _STRIPE_KEY.sub(MASK, text)
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@", text)
    text = _HEADER_LINE.sub(lambda m: f"{m['name']}{m['sep']}{MASK}", text)
    text = _HEADER_PAIR.sub(lambda m: f"{m['name']}{m['sep']}{MASK}", text)
    text = _QUOTED_PAIR.sub(_quoted_pair, text)
    text = _PLAIN_PAIR.sub(_plain_pair, text)
    text = _BEARER.sub(lambda m: f"{m[1]} {MASK}", text)
    return _BASIC.sub(_basic, text)


def _by_length(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(values, key=len, reverse=True))


def _replace_value(text: str, value: str) -> str:
    for form in {value, quote_plus(value), quote(value, safe="")}:
        if form in text:
            text = text.replace(form, MASK)
    scheme, _, token = value.partition(" ")  # "Bearer sk_..." also appears as "sk_..."
    if token and scheme.isalpha() and len(token) >= 6 and token in text:
        text = text.replace(token, MASK)
    return text


def _quoted_pair(match: re.Match[str]) -> str:
    if not SECRET_NAME.search(match["name"]) or not match["value"].strip("*"):
        return match[0]
    return f"{match['q']}{match['name']}{match['q']}{match['sep']}{match['v']}{MASK}{match['v']}"


def _plain_pair(match: re.Match[str]) -> str:
    if not SECRET_NAME.search(match["name"]) or not match["value"].strip("*"):
        return match[0]  # not secret, or already masked
    return f"{match['name']}={match['q']}{MASK}"


def _basic(match: re.Match[str]) -> str:
    """Mask ``Basic <base64>`` only when it decodes to ``user:password`` (not prose)."""
    try:
        decoded = base64.b64decode(match[2] + "=" * (-len(match[2]) % 4), validate=True)
    except (binascii.Error, ValueError):
        return match[0]
    if b":" not in decoded:
        return match[0]
    return f"{match[1]} {MASK}"
