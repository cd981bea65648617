"""The local Salesforce API's state and knobs, and the answers every handler shares."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import orjson
from aiohttp import web

from .org import Org, Row
from .soql import Query

__all__ = ["ApiState", "Fault", "csv_value", "errors", "json_response", "rest_value"]


@dataclass
class Fault:
    """An error answer for the next ``times`` requests whose path contains ``path``."""

    path: str
    status: int
    code: str
    message: str
    times: int
    method: str | None = None


@dataclass
class Cursor:
    query: Query
    page: int
    position: int = 0
    rows: Iterator[Row] | None = None


@dataclass
class Job:
    id: str
    query: Query
    created: str
    state: str = "UploadComplete"
    checks: int = 0
    total: int = 0
    position: int = 0
    rows: Iterator[Row] | None = None


@dataclass
class ApiState:
    """The server's state and knobs; tests change them between requests.

    :param org: the data it serves.
    :param api_limit: the org's daily API requests; ``api_used`` counts up from 0.
    :param page_size: REST records per page at most.
    :param bulk_polls: how many job status checks answer ``InProgress`` first.
    :param jwt_public_key: PEM of the key JWT assertions must be signed with.
    """

    org: Org
    api_limit: int = 1_000_000
    api_used: int = 0
    page_size: int = 2000
    bulk_polls: int = 1
    bulk_default_page: int = 50_000
    jwt_public_key: bytes | None = None
    cut_bulk_after: int | None = None
    cut_bulk_times: int = 0
    expire_at: int | None = None
    job_failure: str | None = None
    hidden_objects: set[str] = field(default_factory=set)
    stalls: list[tuple[str, float, int]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    logins: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    cursors: dict[str, Cursor] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(
        self,
        path: str,
        status: int = 503,
        code: str = "SERVER_UNAVAILABLE",
        message: str = "Server temporarily unavailable",
        times: int = 1,
        method: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests whose path contains ``path`` with an error."""
        with self.lock:
            self.faults.append(Fault(path, status, code, message, times, method))

    def stall(self, path: str, seconds: float, times: int = 1) -> None:
        """Answer the next ``times`` requests whose path contains ``path`` after ``seconds``."""
        with self.lock:
            self.stalls.append((path, seconds, times))

    def _stall(self, path: str) -> float:
        with self.lock:
            for i, (part, seconds, times) in enumerate(self.stalls):
                if times > 0 and part in path:
                    self.stalls[i] = (part, seconds, times - 1)
                    return seconds
        return 0.0

    def expire_sessions(self) -> None:
        """Invalidate every session: the next call answers ``INVALID_SESSION_ID``."""
        with self.lock:
            self.tokens.clear()

    def calls(self, path_part: str, method: str | None = None) -> int:
        """How many requests had ``path_part`` in their path (and the method, if given)."""
        return sum(
            1 for m, p in self.requests if path_part in p and (method is None or m == method)
        )

    def issue(self, flow: str) -> str:
        """Open a session for ``flow`` and return its id (tests use it as a given session)."""
        token = f"{self.org.org_id[:15]}!{secrets.token_urlsafe(24)}"
        with self.lock:
            self.tokens.add(token)
            self.issued.append(token)
            self.logins[flow] = self.logins.get(flow, 0) + 1
        return token

    def _fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.times > 0 and fault.path in path and fault.method in (None, method):
                    fault.times -= 1
                    return fault
        return None


def errors(status: int, code: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps([{"message": message, "errorCode": code}]),
        content_type="application/json",
    )


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")


def rest_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    if isinstance(value, date):
        return value.isoformat()
    return value


def csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
