"""Reading HTTP answers the same way in every Mixpanel client: JSON body, error text."""

from __future__ import annotations

from typing import Any

import orjson
import requests

ERROR_TEXT_LIMIT = 300


def json_body(response: requests.Response) -> Any:
    """The answer's JSON, or None when it is not JSON."""
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


def error_text(response: requests.Response, limit: int = ERROR_TEXT_LIMIT) -> str:
    """The server's own error text: ``{"error": "..."}``, else the body, else the reason."""
    data = json_body(response)
    if isinstance(data, dict) and isinstance(data.get("error"), str) and data["error"]:
        text = data["error"]
    else:
        text = response.text.strip() or response.reason or "no error text"
    return text if len(text) <= limit else text[:limit] + "..."
