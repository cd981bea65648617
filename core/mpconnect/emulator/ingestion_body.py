"""Reading an ingestion request's body: at most 10 MB uncompressed, gzip or not, as JSON.

``/import`` takes a JSON array or newline-delimited JSON; ``/engage`` also takes one
object, or a form whose ``data`` field holds the JSON.
"""

from __future__ import annotations

import zlib
from typing import Any
from urllib.parse import parse_qs

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from mpconnect.emulator.ingestion_answers import IngestionRefused, bad_request, too_large
from mpconnect.emulator.ingestion_checks import MAX_BODY_BYTES, MAX_RECORDS

_READ_CHUNK = 256 * 1024


async def read_body(request: web.Request) -> bytes:
    """Read at most 10 MB of uncompressed body (aiohttp usually inflates gzip itself)."""
    compressed = request.headers.get("Content-Encoding", "").lower() == "gzip"
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            chunk = await request.content.read(_READ_CHUNK)
        except RequestPayloadError:
            raise IngestionRefused(400, bad_request("request body is not valid gzip")) from None
        if not chunk:
            break
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large()
        chunks.append(chunk)
    body = b"".join(chunks)
    if compressed and body[:2] == b"\x1f\x8b":  # not inflated by the server
        try:
            inflater = zlib.decompressobj(wbits=31)
            body = inflater.decompress(body, MAX_BODY_BYTES + 1)
        except zlib.error:
            raise IngestionRefused(400, bad_request("request body is not valid gzip")) from None
        if len(body) > MAX_BODY_BYTES:
            raise too_large()
    return body


def parse_records(body: bytes, content_type: str, *, one_object: bool = False) -> list[Any]:
    """The records of a JSON array (or ND-JSON) body, at most :data:`MAX_RECORDS`.

    :param one_object: also take a single JSON object, as one record.
    """
    try:
        if "ndjson" in content_type:
            records = [orjson.loads(line) for line in body.splitlines() if line.strip()]
        else:
            records = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        message = f"request body is not valid JSON: {exc}"
        raise IngestionRefused(400, bad_request(message)) from None
    if one_object and isinstance(records, dict):
        records = [records]
    if not isinstance(records, list) or not records:
        raise IngestionRefused(400, bad_request("request body must be a non-empty JSON array"))
    if len(records) > MAX_RECORDS:
        raise IngestionRefused(
            400,
            bad_request(
                f"request has {len(records)} records; the limit is {MAX_RECORDS} per request"
            ),
        )
    return records


def parse_engage(body: bytes, content_type: str) -> list[Any]:
    """The profile updates of an ``/engage`` body: JSON, or a form's ``data`` field."""
    if "form-urlencoded" in content_type:
        data = parse_qs(body.decode("utf-8", "replace")).get("data", [""])[0]
        body = data.encode()
    return parse_records(body, content_type, one_object=True)
