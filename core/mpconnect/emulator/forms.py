"""Request parameters of the local Datasets API: the query string and form fields.

Parameters are read from form fields or the query string, as the document's curl lines
send them; the base64 ``data`` field keeps a raw ``+``, since curl sends it unescaped.
"""

from __future__ import annotations

from urllib.parse import unquote_plus

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from mpconnect.emulator.responses import Refused


def parse_form(body: bytes) -> dict[str, str]:
    """Parse an urlencoded body; ``data`` keeps ``+`` (curl sends base64 unescaped)."""
    params: dict[str, str] = {}
    for part in body.split(b"&"):
        if not part:
            continue
        raw_key, _, raw_value = part.partition(b"=")
        key = unquote_plus(raw_key.decode(), errors="strict")
        if key == "data":
            params[key] = _base64_field(raw_value)
        else:
            params[key] = unquote_plus(raw_value.decode(), errors="strict")
    return params


def _base64_field(raw: bytes) -> str:
    """Unescape a base64 form value; a raw ``+`` stays ``+`` (curl sends it unescaped)."""
    if b"%" in raw:
        raw = raw.replace(b"%2B", b"+")
        if b"%" in raw:
            return unquote_plus(raw.replace(b"+", b"%2B").decode("latin-1")).replace(" ", "+")
    return raw.decode("latin-1")


async def request_params(request: web.Request) -> dict[str, str]:
    """Query-string parameters, overridden by form fields of the body."""
    params = dict(request.query)
    if request.body_exists:
        if request.content_type.startswith("multipart/"):
            try:
                form = await request.post()
            except (ValueError, HttpProcessingError, web.HTTPException) as exc:
                raise Refused(400, f"the multipart body is malformed: {exc}") from None
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        else:
            try:
                params.update(parse_form(await request.read()))
            except UnicodeDecodeError:
                raise Refused(400, "the form body is not valid UTF-8") from None
    if "data" in params:
        params["data"] = params["data"].replace(" ", "+")
    return params
