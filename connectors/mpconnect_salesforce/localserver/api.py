"""A local Salesforce API over TLS, answering as Salesforce does for what the connector uses.

* login: SOAP ``login`` (``/services/Soap/u/VER``) for username + password + token, and the
  OAuth token endpoint (``/services/oauth2/token``) for the JWT bearer, client credentials
  and password grants;
* REST: ``query`` with :mod:`.soql`'s subset, ``nextRecordsUrl`` paging (page size
  ``min(page_size, Sforce-Query-Options batchSize)``), global and object ``describe``,
  ``limits``;
* Bulk API 2.0 query jobs: create, status (``InProgress`` for ``bulk_polls`` checks), abort,
  and CSV results streamed in ``maxRecords`` pages with ``Sforce-Locator`` and
  ``Sforce-NumberOfRecords``;
* every ``/services/data`` answer carries ``Sforce-Limit-Info: api-usage=USED/LIMIT``;
  past the limit it answers ``REQUEST_LIMIT_EXCEEDED``;
* Salesforce's error shapes: ``[{"message", "errorCode"}]`` (``INVALID_SESSION_ID``,
  ``MALFORMED_QUERY``, ``INVALID_FIELD``, ``INVALID_TYPE``, ``NOT_FOUND``, ...), SOAP faults
  and OAuth ``{"error", "error_description"}``.

Faults for tests: :meth:`ApiState.fail` (an error answer for the next N matching requests),
:meth:`ApiState.expire_sessions`, ``cut_bulk_after`` (drop a results stream mid-page).

Users start it with ``mpconnect serve salesforce``; the connector's tests use it too.
Benchmarks run it alone: ``python -m mpconnect_salesforce.localserver.api --contacts 1000000
--ca-dir DIR`` prints ``PORT CA_PATH`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import csv
import io
import re
import secrets
import threading
import time
import xml.dom.minidom
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from html import escape
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from .org import Org, Row, make_id
from .soql import Column, Query, SoqlError, parse

USERNAME = "ada@acme.test"
PASSWORD = "correct horse"
SECURITY_TOKEN = "TOKEN123"
CONSUMER_KEY = "3MVG9-local-consumer-key"
CONSUMER_SECRET = "local-consumer-secret"
_SOAP = "urn:partner.soap.sforce.com"
_USAGE = web.RequestKey("api_usage", str)
_BAD_LOGIN = "Invalid username, password, security token; or user locked out."


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
class _Cursor:
    query: Query
    page: int
    position: int = 0
    rows: Iterator[Row] | None = None


@dataclass
class _Job:
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
    cursors: dict[str, _Cursor] = field(default_factory=dict)
    jobs: dict[str, _Job] = field(default_factory=dict)
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


def _element_text(dom: xml.dom.minidom.Document, tag: str) -> str:
    """The text of the first ``tag`` element of the partner SOAP namespace."""
    node = dom.getElementsByTagNameNS(_SOAP, tag)[0].firstChild
    if not isinstance(node, xml.dom.minidom.Text):
        raise ValueError(f"no text in {tag}")
    return node.data


def _errors(status: int, code: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps([{"message": message, "errorCode": code}]),
        content_type="application/json",
    )


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")


def _rest_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _attributes(version: str, table_name: str, record_id: str | None) -> dict[str, str]:
    url = f"/services/data/v{version}/sobjects/{table_name}/{record_id}"
    return {"type": table_name, "url": url}


def _rest_record(query: Query, columns: list[Column], row: Row, version: str) -> dict[str, Any]:
    record: dict[str, Any] = {"attributes": _attributes(version, query.table.name, row.get("Id"))}
    for column in columns:
        if column.relationship is None:
            record[column.name] = _rest_value(row.get(column.name))
            continue
        relationship = column.relationship.relationship_name or ""
        if relationship not in record:
            parent_id = row.get(column.relationship.name)
            parent = _parent_table(column, parent_id) if parent_id else None
            record[relationship] = (
                {"attributes": _attributes(version, parent, parent_id)} if parent else None
            )
        if record[relationship] is not None:
            record[relationship][column.name] = _rest_value(column.get(row))
    return record


def _parent_table(column: Column, parent_id: str) -> str | None:
    for table in column.targets:
        if parent_id.startswith(table.prefix):
            return table.name
    return None


class SalesforceApi:
    """The aiohttp application of the local Salesforce API.

    :param state: the data and knobs it serves.
    """

    def __init__(self, state: ApiState) -> None:
        self.state = state
        self.counts: dict[tuple[str, str], int] = {}
        app = web.Application(middlewares=[self._middleware])
        app.on_response_prepare.append(self._limit_header)
        app.add_routes(
            [
                web.post("/services/Soap/u/{version}", self.soap_login),
                web.post("/services/oauth2/token", self.oauth_token),
                web.get("/services/data/v{version}/query", self.query),
                web.get("/services/data/v{version}/query/", self.query),
                web.get("/services/data/v{version}/query/{cursor}", self.query_more),
                web.get("/services/data/v{version}/sobjects", self.describe_global),
                web.get("/services/data/v{version}/sobjects/{name}/describe", self.describe),
                web.get("/services/data/v{version}/limits", self.limits),
                web.get("/services/data/v{version}/limits/", self.limits),
                web.post("/services/data/v{version}/jobs/query", self.create_job),
                web.get("/services/data/v{version}/jobs/query/{job}", self.job_info),
                web.patch("/services/data/v{version}/jobs/query/{job}", self.abort_job),
                web.get("/services/data/v{version}/jobs/query/{job}/results", self.job_results),
            ]
        )
        self.app = app

    # -- every request -----------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        state = self.state
        with state.lock:
            state.requests.append((request.method, request.path))
        fault = state._fault(request.method, request.path)
        if fault is not None:
            return _errors(fault.status, fault.code, fault.message)
        delay = state._stall(request.path)
        if delay:
            await asyncio.sleep(delay)
        if not request.path.startswith("/services/data/"):
            return await handler(request)
        with state.lock:
            if state.expire_at is not None and state.api_used + 1 >= state.expire_at:
                state.expire_at = None
                state.tokens.clear()
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in state.tokens:
            return _errors(401, "INVALID_SESSION_ID", "Session expired or invalid")
        with state.lock:
            state.api_used += 1
            over = state.api_used > state.api_limit
        request[_USAGE] = f"api-usage={state.api_used}/{state.api_limit}"
        if over:
            return _errors(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        return await handler(request)

    async def _limit_header(self, request: web.Request, response: web.StreamResponse) -> None:
        usage = request.get(_USAGE)
        if usage:
            response.headers["Sforce-Limit-Info"] = usage

    # -- login -------------------------------------------------------------------------

    async def soap_login(self, request: web.Request) -> web.Response:
        """SOAP ``login``: a session for username + password + security token, else a fault."""
        body = await request.read()
        try:
            dom = xml.dom.minidom.parseString(body)
            username = _element_text(dom, "username")
            password = _element_text(dom, "password")
        except Exception:  # any malformed envelope is a failed login
            return self._soap_fault("INVALID_LOGIN", _BAD_LOGIN)
        if username != USERNAME or password != PASSWORD + SECURITY_TOKEN:
            return self._soap_fault("INVALID_LOGIN", _BAD_LOGIN)
        token = self.state.issue("soap")
        version = request.match_info["version"]
        host = request.host
        org_id = self.state.org.org_id
        user_id = make_id("005", 0)
        text = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            f'xmlns="{_SOAP}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            "<soapenv:Body><loginResponse><result>"
            f"<metadataServerUrl>https://{host}/services/Soap/m/{version}/{org_id}</metadataServerUrl>"
            "<passwordExpired>false</passwordExpired><sandbox>false</sandbox>"
            f"<serverUrl>https://{host}/services/Soap/u/{version}/{org_id}</serverUrl>"
            f"<sessionId>{escape(token)}</sessionId><userId>{user_id}</userId>"
            f"<userInfo><organizationId>{org_id}</organizationId>"
            f"<userName>{escape(USERNAME)}</userName></userInfo>"
            "</result></loginResponse></soapenv:Body></soapenv:Envelope>"
        )
        return web.Response(text=text, content_type="text/xml")

    @staticmethod
    def _soap_fault(code: str, message: str) -> web.Response:
        text = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:sf="urn:fault.partner.soap.sforce.com" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
            f"<soapenv:Fault><faultcode>sf:{code}</faultcode>"
            f"<faultstring>{code}: {escape(message)}</faultstring><detail>"
            '<sf:LoginFault xsi:type="sf:LoginFault">'
            f"<sf:exceptionCode>{code}</sf:exceptionCode>"
            f"<sf:exceptionMessage>{escape(message)}</sf:exceptionMessage>"
            "</sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
        )
        return web.Response(status=500, text=text, content_type="text/xml")

    async def oauth_token(self, request: web.Request) -> web.Response:
        """The OAuth token endpoint: JWT bearer, client credentials and password grants."""
        form = await request.post()
        grant = str(form.get("grant_type", ""))
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            problem = self._check_jwt(str(form.get("assertion", "")))
            flow = "jwt"
        elif grant == "client_credentials":
            problem = self._check_basic(request.headers.get("Authorization", ""))
            flow = "client_credentials"
        elif grant == "password":
            ok = (
                form.get("client_id") == CONSUMER_KEY
                and form.get("client_secret") == CONSUMER_SECRET
                and form.get("username") == USERNAME
                and form.get("password") == PASSWORD
            )
            problem = None if ok else "authentication failure"
            flow = "oauth_password"
        else:
            return _json(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant type not supported",
                },
                400,
            )
        if problem is not None:
            return _json({"error": "invalid_grant", "error_description": problem}, 400)
        token = self.state.issue(flow)
        host = request.host
        return _json(
            {
                "access_token": token,
                "instance_url": f"https://{host}",
                "id": f"https://{host}/id/{self.state.org.org_id}/{make_id('005', 0)}",
                "token_type": "Bearer",
                "issued_at": str(int(time.time() * 1000)),
                "signature": base64.b64encode(secrets.token_bytes(32)).decode(),
            }
        )

    def _check_jwt(self, assertion: str) -> str | None:
        import jwt

        if self.state.jwt_public_key is None:
            return "no JWT key configured for this org"
        try:
            claims = jwt.decode(
                assertion,
                self.state.jwt_public_key,
                algorithms=["RS256"],
                audience="https://login.salesforce.com",
                options={"require": ["exp", "iss", "sub", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            return "expired authorization code"
        except jwt.PyJWTError:
            return "invalid assertion"
        if claims["iss"] != CONSUMER_KEY:
            return "invalid client credentials"
        if claims["sub"] != USERNAME:
            return "user hasn't approved this consumer"
        return None

    @staticmethod
    def _check_basic(header: str) -> str | None:
        if not header.startswith("Basic "):
            return "invalid client credentials"
        pair = base64.b64decode(header[6:]).decode()
        return None if pair == f"{CONSUMER_KEY}:{CONSUMER_SECRET}" else "invalid client credentials"

    # -- REST --------------------------------------------------------------------------

    def _parse(self, text: str) -> Query:
        query = parse(text, self.state.org)
        if query.table.name in self.state.hidden_objects:
            raise SoqlError("INVALID_TYPE", f"sObject type '{query.table.name}' is not supported.")
        return query

    def _count(self, query: Query) -> int:
        key = (query.table.name, re.split(r"\sfrom\s", query.text, maxsplit=1, flags=re.I)[-1])
        if key not in self.counts:
            self.counts[key] = sum(1 for _ in query.rows())
        return self.counts[key]

    async def query(self, request: web.Request) -> web.Response:
        """``GET query?q=``: the first page of a query (or its count for ``COUNT()``)."""
        try:
            query = self._parse(request.query.get("q", ""))
        except SoqlError as exc:
            return _errors(400, exc.code, exc.message)
        total = self._count(query)
        if query.columns is None:
            return _json({"totalSize": total, "done": True, "records": []})
        page = self.state.page_size
        options = request.headers.get("Sforce-Query-Options", "")
        if options.startswith("batchSize="):
            page = min(page, max(1, int(options.split("=", 1)[1])))
        cursor_id = "01g" + secrets.token_hex(6)
        cursor = _Cursor(query, page)
        with self.state.lock:
            self.state.cursors[cursor_id] = cursor
        return self._page(request, cursor_id, cursor, 0, total)

    async def query_more(self, request: web.Request) -> web.Response:
        """``GET query/<cursor>-<offset>``: the page a ``nextRecordsUrl`` points at."""
        cursor_id, _, offset = request.match_info["cursor"].partition("-")
        cursor = self.state.cursors.get(cursor_id)
        if cursor is None or not offset.isdigit():
            return _errors(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(request, cursor_id, cursor, int(offset), self._count(cursor.query))

    def _page(
        self, request: web.Request, cursor_id: str, cursor: _Cursor, offset: int, total: int
    ) -> web.Response:
        version = request.match_info["version"]
        if cursor.rows is None or cursor.position != offset:
            cursor.rows = cursor.query.rows()
            for _ in range(offset):
                next(cursor.rows, None)
            cursor.position = offset
        assert cursor.query.columns is not None
        records = []
        for row in cursor.rows:
            records.append(_rest_record(cursor.query, cursor.query.columns, row, version))
            if len(records) >= cursor.page:
                break
        cursor.position = offset + len(records)
        done = cursor.position >= total
        body: dict[str, Any] = {"totalSize": total, "done": done, "records": records}
        if not done:
            body["nextRecordsUrl"] = (
                f"/services/data/v{version}/query/{cursor_id}-{cursor.position}"
            )
        return _json(body)

    async def describe_global(self, request: web.Request) -> web.Response:
        """``GET sobjects``: every object this user can query."""
        sobjects = [
            {
                "name": t.name,
                "label": t.name,
                "custom": t.custom,
                "queryable": True,
                "keyPrefix": t.prefix,
            }
            for t in self.state.org.tables.values()
            if t.name not in self.state.hidden_objects
        ]
        return _json({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects})

    async def describe(self, request: web.Request) -> web.Response:
        """``GET sobjects/<name>/describe``: an object's fields, or ``NOT_FOUND``."""
        table = self.state.org.table(request.match_info["name"])
        if table is None or table.name in self.state.hidden_objects:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        return _json(
            {
                "name": table.name,
                "label": table.name,
                "custom": table.custom,
                "queryable": True,
                "keyPrefix": table.prefix,
                "fields": [f.describe() for f in table.fields],
            }
        )

    async def limits(self, request: web.Request) -> web.Response:
        """``GET limits``: the daily API request quota."""
        state = self.state
        return _json(
            {
                "DailyApiRequests": {
                    "Max": state.api_limit,
                    "Remaining": max(0, state.api_limit - state.api_used),
                }
            }
        )

    # -- Bulk API 2.0 ------------------------------------------------------------------

    async def create_job(self, request: web.Request) -> web.Response:
        """``POST jobs/query``: create a Bulk 2.0 query job."""
        try:
            spec = await request.json()
        except ValueError:
            return _errors(400, "JSON_PARSER_ERROR", "request body is not JSON")
        if spec.get("operation") not in ("query", "queryAll"):
            return _errors(400, "INVALIDJOB", "operation must be query or queryAll")
        try:
            query = self._parse(str(spec.get("query", "")))
        except SoqlError as exc:
            return _errors(400, exc.code, exc.message)
        if query.columns is None:
            return _errors(
                400, "INVALIDJOB", "Aggregate queries are not supported in Bulk API 2.0 query jobs"
            )
        compound = [c.path for c in query.columns if c.type in ("address", "location")]
        if compound:
            return _errors(
                400,
                "INVALIDJOB",
                f"Selecting compound data not supported in Bulk Query: {compound[0]}",
            )
        job_id = make_id("750", len(self.state.jobs) + 1)
        job = _Job(job_id, query, datetime.now().astimezone().isoformat())
        with self.state.lock:
            self.state.jobs[job_id] = job
        return _json(self._job_json(job, request.match_info["version"]))

    def _job_json(self, job: _Job, version: str) -> dict[str, Any]:
        return {
            "id": job.id,
            "operation": "query",
            "object": job.query.table.name,
            "createdById": make_id("005", 0),
            "createdDate": job.created,
            "systemModstamp": job.created,
            "state": job.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(version),
            "jobType": "V2Query",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
            "numberRecordsProcessed": job.total if job.state == "JobComplete" else 0,
            "retries": 0,
            "totalProcessingTime": 0,
            **({"errorMessage": self.state.job_failure} if job.state == "Failed" else {}),
        }

    async def job_info(self, request: web.Request) -> web.Response:
        """``GET jobs/query/<id>``: the job's state (``InProgress`` for ``bulk_polls`` checks)."""
        job = self.state.jobs.get(request.match_info["job"])
        if job is None:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        if job.state in ("UploadComplete", "InProgress"):
            job.checks += 1
            if job.checks > self.state.bulk_polls and self.state.job_failure:
                job.state = "Failed"
            elif job.checks > self.state.bulk_polls:
                job.total = self._count(job.query)
                job.state = "JobComplete"
            else:
                job.state = "InProgress"
        return _json(self._job_json(job, request.match_info["version"]))

    async def abort_job(self, request: web.Request) -> web.Response:
        """``PATCH jobs/query/<id>``: abort the job."""
        job = self.state.jobs.get(request.match_info["job"])
        if job is None:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        job.state = "Aborted"
        return _json(self._job_json(job, request.match_info["version"]))

    async def job_results(self, request: web.Request) -> web.StreamResponse:
        """``GET jobs/query/<id>/results``: one CSV page, streamed, with ``Sforce-Locator``."""
        job = self.state.jobs.get(request.match_info["job"])
        if job is None:
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        if job.state != "JobComplete":
            return _errors(400, "INVALIDJOBSTATE", f"job {job.id} is {job.state}, not JobComplete")
        locator = request.query.get("locator")
        try:
            offset = int(base64.b64decode(locator).decode()) if locator else 0
            size = int(request.query.get("maxRecords", self.state.bulk_default_page))
        except ValueError:
            return _errors(400, "INVALIDLOCATOR", "invalid locator or maxRecords")
        count = max(0, min(size, job.total - offset))
        following = offset + count
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/csv",
                "Sforce-NumberOfRecords": str(count),
                "Sforce-Locator": base64.b64encode(str(following).encode()).decode()
                if following < job.total
                else "null",
            }
        )
        await response.prepare(request)
        assert job.query.columns is not None
        columns = job.query.columns
        if job.rows is None or job.position != offset:
            job.rows = job.query.rows()
            for _ in range(offset):
                next(job.rows, None)
        buffer = io.StringIO()
        writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow([c.path for c in columns])
        cut = self._take_cut()
        written = 0
        for row in job.rows:
            writer.writerow([_csv_value(c.get(row)) for c in columns])
            written += 1
            if cut is not None and written >= cut:
                await response.write(buffer.getvalue().encode())
                job.rows = None
                request.transport.close()  # type: ignore[union-attr]
                return response
            if written % 500 == 0:
                await response.write(buffer.getvalue().encode())
                buffer.seek(0)
                buffer.truncate()
            if written >= count:
                break
        job.position = offset + written
        await response.write(buffer.getvalue().encode())
        await response.write_eof()
        return response

    def _take_cut(self) -> int | None:
        with self.state.lock:
            if self.state.cut_bulk_after is None or self.state.cut_bulk_times <= 0:
                return None
            self.state.cut_bulk_times -= 1
            return self.state.cut_bulk_after


def main() -> None:
    """Serve an org on 127.0.0.1 over TLS until killed; print ``PORT CA_PATH`` when ready."""
    from mpconnect import BackgroundServer, LocalCA

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("accounts", "contacts", "leads", "opportunities", "cases", "tasks"):
        parser.add_argument(f"--{name}", type=int, default=0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--page-size", type=int, default=2000)
    parser.add_argument("--ca-dir", type=Path, required=True)
    args = parser.parse_args()
    org = Org(
        args.seed,
        accounts=args.accounts or 1,
        contacts=args.contacts,
        leads=args.leads,
        opportunities=args.opportunities,
        cases=args.cases,
        tasks=args.tasks,
        demo_requests=0,
        members=0,
    )
    ca = LocalCA(args.ca_dir)
    state = ApiState(org, page_size=args.page_size, bulk_polls=0)
    server = BackgroundServer(SalesforceApi(state).app, ssl_context=ca.server_context()).start()
    print(server.port, ca.ca_path, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
