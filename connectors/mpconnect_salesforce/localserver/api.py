"""A local Salesforce API over TLS, answering as Salesforce does for what the connector uses.

* login: SOAP ``login`` (``/services/Soap/u/VER``) for username + password + token, and the
  OAuth token endpoint (``/services/oauth2/token``) for the JWT bearer, client credentials
  and password grants;
* REST: ``query`` and ``queryAll`` (deleted rows too) with :mod:`.soql`'s subset,
  ``nextRecordsUrl`` paging (page size ``min(page_size, Sforce-Query-Options batchSize)``),
  global and object ``describe``, ``limits``;
* Bulk API 2.0 query jobs (``query`` and ``queryAll``): create, status (``InProgress`` for
  ``bulk_polls`` checks), abort, and CSV results streamed in ``maxRecords`` pages with
  ``Sforce-Locator`` and ``Sforce-NumberOfRecords``;
* every answer's ``Date`` header is the org's clock (:mod:`.changes`);
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
import re
import secrets
import threading
import time
import xml.dom.minidom
from email.utils import formatdate
from html import escape
from pathlib import Path
from typing import Any

from aiohttp import web

from .bulkapi import BulkJobs
from .org import Org, Row, make_id
from .soql import Column, Query, SoqlError, parse
from .state import ApiState, Cursor, errors, json_response, rest_value

USERNAME = "ada@acme.test"
PASSWORD = "correct horse"
SECURITY_TOKEN = "TOKEN123"
CONSUMER_KEY = "3MVG9-local-consumer-key"
CONSUMER_SECRET = "local-consumer-secret"
_SOAP = "urn:partner.soap.sforce.com"
_USAGE = web.RequestKey("api_usage", str)
_BAD_LOGIN = "Invalid username, password, security token; or user locked out."


def _element_text(dom: xml.dom.minidom.Document, tag: str) -> str:
    """The text of the first ``tag`` element of the partner SOAP namespace."""
    node = dom.getElementsByTagNameNS(_SOAP, tag)[0].firstChild
    if not isinstance(node, xml.dom.minidom.Text):
        raise ValueError(f"no text in {tag}")
    return node.data


def _attributes(version: str, table_name: str, record_id: str | None) -> dict[str, str]:
    url = f"/services/data/v{version}/sobjects/{table_name}/{record_id}"
    return {"type": table_name, "url": url}


def _rest_record(query: Query, columns: list[Column], row: Row, version: str) -> dict[str, Any]:
    record: dict[str, Any] = {"attributes": _attributes(version, query.table.name, row.get("Id"))}
    for column in columns:
        if column.relationship is None:
            record[column.name] = rest_value(row.get(column.name))
            continue
        relationship = column.relationship.relationship_name or ""
        if relationship not in record:
            parent_id = row.get(column.relationship.name)
            parent = _parent_table(column, parent_id) if parent_id else None
            record[relationship] = (
                {"attributes": _attributes(version, parent, parent_id)} if parent else None
            )
        if record[relationship] is not None:
            record[relationship][column.name] = rest_value(column.get(row))
    return record


def _parent_table(column: Column, parent_id: str) -> str | None:
    for table in column.targets:
        if parent_id.startswith(table.prefix):
            return table.name
    return None


class SalesforceApi(BulkJobs):
    """The aiohttp application of the local Salesforce API.

    :param state: the data and knobs it serves.
    """

    def __init__(self, state: ApiState) -> None:
        self.state = state
        self.counts: dict[tuple[str, str, bool, int], int] = {}
        app = web.Application(middlewares=[self._middleware])
        app.on_response_prepare.append(self._limit_header)
        app.add_routes(
            [
                web.post("/services/Soap/u/{version}", self.soap_login),
                web.post("/services/oauth2/token", self.oauth_token),
                web.get("/services/data/v{version}/query", self.query),
                web.get("/services/data/v{version}/query/", self.query),
                web.get("/services/data/v{version}/query/{cursor}", self.query_more),
                web.get("/services/data/v{version}/queryAll", self.query_all),
                web.get("/services/data/v{version}/queryAll/", self.query_all),
                web.get("/services/data/v{version}/queryAll/{cursor}", self.query_more),
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
            return errors(fault.status, fault.code, fault.message)
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
            return errors(401, "INVALID_SESSION_ID", "Session expired or invalid")
        with state.lock:
            state.api_used += 1
            over = state.api_used > state.api_limit
        request[_USAGE] = f"api-usage={state.api_used}/{state.api_limit}"
        if over:
            return errors(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        return await handler(request)

    async def _limit_header(self, request: web.Request, response: web.StreamResponse) -> None:
        usage = request.get(_USAGE)
        if usage:
            response.headers["Sforce-Limit-Info"] = usage
        response.headers["Date"] = formatdate(self.state.org.now().timestamp(), usegmt=True)

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
            return json_response(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant type not supported",
                },
                400,
            )
        if problem is not None:
            return json_response({"error": "invalid_grant", "error_description": problem}, 400)
        token = self.state.issue(flow)
        host = request.host
        return json_response(
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
        tail = re.split(r"\sfrom\s", query.text, maxsplit=1, flags=re.I)[-1]
        key = (query.table.name, tail, query.all_rows, self.state.org.version)
        if key not in self.counts or query.all_rows:
            self.counts[key] = sum(1 for _ in query.rows())
        return self.counts[key]

    async def query_all(self, request: web.Request) -> web.Response:
        """``GET queryAll?q=``: as ``query``, and the recycle bin's deleted rows too."""
        return await self.query(request, all_rows=True)

    async def query(self, request: web.Request, all_rows: bool = False) -> web.Response:
        """``GET query?q=``: the first page of a query (or its count for ``COUNT()``)."""
        try:
            query = self._parse(request.query.get("q", ""))
        except SoqlError as exc:
            return errors(400, exc.code, exc.message)
        query.all_rows = all_rows
        total = self._count(query)
        if query.columns is None:
            return json_response({"totalSize": total, "done": True, "records": []})
        page = self.state.page_size
        options = request.headers.get("Sforce-Query-Options", "")
        if options.startswith("batchSize="):
            page = min(page, max(1, int(options.split("=", 1)[1])))
        cursor_id = "01g" + secrets.token_hex(6)
        cursor = Cursor(query, page)
        with self.state.lock:
            self.state.cursors[cursor_id] = cursor
        return self._page(request, cursor_id, cursor, 0, total)

    async def query_more(self, request: web.Request) -> web.Response:
        """``GET query/<cursor>-<offset>``: the page a ``nextRecordsUrl`` points at."""
        cursor_id, _, offset = request.match_info["cursor"].partition("-")
        cursor = self.state.cursors.get(cursor_id)
        if cursor is None or not offset.isdigit():
            return errors(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(request, cursor_id, cursor, int(offset), self._count(cursor.query))

    def _page(
        self, request: web.Request, cursor_id: str, cursor: Cursor, offset: int, total: int
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
        return json_response(body)

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
        return json_response({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects})

    async def describe(self, request: web.Request) -> web.Response:
        """``GET sobjects/<name>/describe``: an object's fields, or ``NOT_FOUND``."""
        table = self.state.org.table(request.match_info["name"])
        if table is None or table.name in self.state.hidden_objects:
            return errors(404, "NOT_FOUND", "The requested resource does not exist")
        return json_response(
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
        return json_response(
            {
                "DailyApiRequests": {
                    "Max": state.api_limit,
                    "Remaining": max(0, state.api_limit - state.api_used),
                }
            }
        )


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
