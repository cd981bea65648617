"""Credentials on the local Datasets API: Basic auth with a secret, and the project token."""

from __future__ import annotations

import base64
import binascii
import hmac

from aiohttp import web

from mpconnect.emulator.checks import shown
from mpconnect.emulator.options import ServerOptions
from mpconnect.emulator.responses import Refused


def basic_user(request: web.Request) -> str | None:
    """The user name of the Basic ``Authorization`` header (None without one), or refuse."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise Refused(
            401,
            "unsupported authorization scheme: use Basic auth with the project "
            "secret or the dataset secret as the user name",
        )
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise Refused(401, "malformed Basic authorization header") from None
    return decoded.partition(":")[0]


def _same(given: str, expected: str) -> bool:
    """Compare secrets in constant time (as bytes: non-ASCII text is allowed)."""
    return hmac.compare_digest(given.encode(), expected.encode())


def authenticate(request: web.Request, options: ServerOptions) -> str:
    """Return the secret if it is the project's or some dataset's, else refuse."""
    secret = basic_user(request)
    if not secret:
        raise Refused(
            401,
            "missing credentials: use Basic auth with the project secret "
            "or the dataset secret as the user name",
        )
    if _same(secret, options.project_secret):
        return secret
    if any(_same(secret, s) for s in options.dataset_secrets.values()):
        return secret
    raise Refused(
        401, "invalid credentials: the user name is neither the project secret nor a dataset secret"
    )


def authorize(secret: str, dataset_id: str, options: ServerOptions) -> None:
    """Refuse a dataset secret used for another dataset."""
    if _same(secret, options.project_secret):
        return
    own = options.dataset_secrets.get(dataset_id)
    if own is None or not _same(secret, own):
        raise Refused(
            403,
            f"the dataset secret given is not the secret of dataset "
            f"{dataset_id}; use that dataset's secret or the project secret",
        )


def check_token(params: dict[str, str], options: ServerOptions, *, required: bool = True) -> None:
    """Refuse a missing (when required) or wrong ``token`` parameter."""
    token = params.get("token")
    if token is None or token == "":
        if required:
            raise Refused(
                400, "token is required: the project token, as a form field or in the query string"
            )
        return
    if token != options.project_token:
        raise Refused(403, f"token {shown(token)!r} is not this project's token")
