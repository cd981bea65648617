"""Bulk API 2.0 query jobs of the local Salesforce API: create (``query`` or ``queryAll``),
status, abort, and CSV results streamed in ``maxRecords`` pages with ``Sforce-Locator``."""

from __future__ import annotations

import base64
import csv
import io
from datetime import datetime
from typing import Any

from aiohttp import web

from .org import make_id
from .soql import Query, SoqlError
from .state import ApiState, Job, csv_value, errors, json_response

__all__ = ["BulkJobs"]


class BulkJobs:
    """The Bulk 2.0 query handlers, mixed into the API application."""

    state: ApiState

    def _parse(self, text: str) -> Query:
        raise NotImplementedError

    def _count(self, query: Query) -> int:
        raise NotImplementedError

    # -- Bulk API 2.0 ------------------------------------------------------------------

    async def create_job(self, request: web.Request) -> web.Response:
        """``POST jobs/query``: create a Bulk 2.0 query job."""
        try:
            spec = await request.json()
        except ValueError:
            return errors(400, "JSON_PARSER_ERROR", "request body is not JSON")
        if spec.get("operation") not in ("query", "queryAll"):
            return errors(400, "INVALIDJOB", "operation must be query or queryAll")
        try:
            query = self._parse(str(spec.get("query", "")))
        except SoqlError as exc:
            return errors(400, exc.code, exc.message)
        if query.columns is None:
            return errors(
                400, "INVALIDJOB", "Aggregate queries are not supported in Bulk API 2.0 query jobs"
            )
        if query.order or query.limit is not None:
            return errors(
                400,
                "INVALIDJOB",
                "Bulk API 2.0 query jobs do not support ORDER BY or LIMIT (they disable "
                "PK chunking); remove them",
            )
        compound = [c.path for c in query.columns if c.type in ("address", "location")]
        if compound:
            return errors(
                400,
                "INVALIDJOB",
                f"Selecting compound data not supported in Bulk Query: {compound[0]}",
            )
        query.all_rows = spec["operation"] == "queryAll"
        job_id = make_id("750", len(self.state.jobs) + 1)
        job = Job(job_id, query, datetime.now().astimezone().isoformat())
        with self.state.lock:
            self.state.jobs[job_id] = job
        return json_response(self._jobjson_response(job, request.match_info["version"]))

    def _jobjson_response(self, job: Job, version: str) -> dict[str, Any]:
        return {
            "id": job.id,
            "operation": "queryAll" if job.query.all_rows else "query",
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
            return errors(404, "NOT_FOUND", "The requested resource does not exist")
        if job.state in ("UploadComplete", "InProgress"):
            job.checks += 1
            if job.checks > self.state.bulk_polls and self.state.job_failure:
                job.state = "Failed"
            elif job.checks > self.state.bulk_polls:
                job.total = self._count(job.query)
                job.state = "JobComplete"
            else:
                job.state = "InProgress"
        return json_response(self._jobjson_response(job, request.match_info["version"]))

    async def abort_job(self, request: web.Request) -> web.Response:
        """``PATCH jobs/query/<id>``: abort the job."""
        job = self.state.jobs.get(request.match_info["job"])
        if job is None:
            return errors(404, "NOT_FOUND", "The requested resource does not exist")
        job.state = "Aborted"
        return json_response(self._jobjson_response(job, request.match_info["version"]))

    async def job_results(self, request: web.Request) -> web.StreamResponse:
        """``GET jobs/query/<id>/results``: one CSV page, streamed, with ``Sforce-Locator``."""
        job = self.state.jobs.get(request.match_info["job"])
        if job is None:
            return errors(404, "NOT_FOUND", "The requested resource does not exist")
        if job.state != "JobComplete":
            return errors(400, "INVALIDJOBSTATE", f"job {job.id} is {job.state}, not JobComplete")
        locator = request.query.get("locator")
        try:
            offset = int(base64.b64decode(locator).decode()) if locator else 0
            size = int(request.query.get("maxRecords", self.state.bulk_default_page))
        except ValueError:
            return errors(400, "INVALIDLOCATOR", "invalid locator or maxRecords")
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
            writer.writerow([csv_value(c.get(row)) for c in columns])
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
