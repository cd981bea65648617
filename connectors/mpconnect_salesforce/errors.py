"""Turning Salesforce's error answers into one clear line.

Salesforce answers REST and Bulk 2.0 errors as ``[{"errorCode": ..., "message": ...}]``;
OAuth errors as ``{"error": ..., "error_description": ...}``.
"""

from __future__ import annotations

from typing import Any

import requests

from mpconnect import SourceError, SourcePaused

__all__ = ["QuotaExceeded", "error_code", "error_text", "from_salesforce_error"]


class QuotaExceeded(SourcePaused):
    """A run stopped so as not to use more of the org's daily API quota than allowed: it
    ends ``paused: api quota``, keeping what it read, and the next run goes on from there."""

    def __init__(self, detail: str) -> None:
        super().__init__("api quota", detail)


def _first_error(content: Any) -> dict[str, Any] | None:
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return content[0]
    if isinstance(content, dict):
        return content
    return None


def error_code(response: requests.Response) -> str | None:
    """The ``errorCode`` of an error response, or None when it has none."""
    if response.status_code < 400:
        return None
    try:
        first = _first_error(response.json())
    except ValueError:
        return None
    if first is None:
        return None
    return first.get("errorCode") or first.get("error")


def error_text(content: Any) -> str:
    """``CODE: message`` from a Salesforce error body (decoded JSON or text)."""
    first = _first_error(content)
    if first is not None:
        code = first.get("errorCode") or first.get("error") or "ERROR"
        message = first.get("message") or first.get("error_description") or ""
        return f"{code}: {message}".rstrip(": ")
    if isinstance(content, bytes):
        content = content.decode("utf-8", "replace")
    return str(content)[:300]


def from_salesforce_error(exc: Exception, what: str) -> SourceError:
    """A SourceError for a simple-salesforce exception, naming what was being done."""
    content = getattr(exc, "content", None)
    status = getattr(exc, "status", None)
    text = error_text(content) if content is not None else str(exc)
    where = f" (HTTP {status})" if status else ""
    return SourceError(f"Salesforce refused {what}{where}: {text}")
