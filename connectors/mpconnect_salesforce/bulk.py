"""Bulk API 2.0 query jobs, with results streamed and parsed row by row.

simple-salesforce's ``bulk2`` reads each page of results whole into one string (up to
``maxRecords`` rows); here each page is a streamed response parsed as CSV line by line,
so memory stays flat however large the object. A page cut off mid-stream is fetched again
with the same locator (locators are stable while the job exists) and its rows already
yielded are skipped; a page with fewer rows than ``Sforce-NumberOfRecords`` promised is
an error, never a silent loss.
"""

from __future__ import annotations

import csv
import http.client
import io
import logging
import time
from collections.abc import Callable, Generator, Iterator

import requests
import urllib3

from mpconnect import SourceError
from mpconnect_salesforce.errors import error_text

__all__ = ["BulkQuery"]

_STREAM_ERRORS = (
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
    requests.RequestException,
)
_FINISHED = ("JobComplete", "Failed", "Aborted")


class _ShortPage(Exception):
    """A results page ended before the rows its header announced."""


class BulkQuery:
    """Run one SOQL query as a Bulk 2.0 job and stream its rows as ``{column: text}``.

    :param http: the session to send requests through (the run's transport).
    :param jobs_url: ``https://HOST/services/data/vXX.X/jobs/query``.
    :param token: returns the current session id (it may change when the session is renewed).
    :param page_size: ``maxRecords`` per results page.
    :param poll_interval: the longest wait between job status checks, in seconds.
    :param timeout: give up (and abort the job) when it has not finished after this long.
    :param max_retries: how often one results page may be fetched again after a cut.
    """

    def __init__(
        self,
        http: requests.Session,
        jobs_url: str,
        token: Callable[[], str],
        *,
        page_size: int,
        poll_interval: float,
        timeout: float,
        max_retries: int,
        log: logging.Logger,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.http = http
        self.jobs_url = jobs_url
        self.token = token
        self.page_size = page_size
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.max_retries = max_retries
        self.log = log
        self.sleep = sleep

    def _headers(self, accept: str = "application/json") -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token()}",
            "Content-Type": "application/json",
            "Accept": accept,
        }

    def _json(self, response: requests.Response, what: str) -> dict[str, object]:
        if response.status_code >= 300:
            raise SourceError(
                f"Salesforce Bulk 2.0 refused {what} (HTTP {response.status_code}): "
                f"{error_text(_decoded(response))}"
            )
        return response.json()

    def rows(self, soql: str, what: str, operation: str = "query") -> Iterator[dict[str, str]]:
        """Create the job, wait for it, and yield its rows one at a time.

        :param what: names the query in messages, such as ``"Contact"``.
        :param operation: ``"query"``, or ``"queryAll"`` for deleted rows too.
        """
        job = self._json(
            self.http.post(
                self.jobs_url,
                json={
                    "operation": operation,
                    "query": soql,
                    "columnDelimiter": "COMMA",
                    "lineEnding": "LF",
                },
                headers=self._headers(),
            ),
            f"the query job for {what}",
        )
        job_url = f"{self.jobs_url}/{job['id']}"
        self._wait(job_url, what)
        locator: str | None = None
        page = 0
        while True:
            page += 1
            locator = yield from self._page(job_url, locator, what, page)
            if not locator:
                return

    def _wait(self, job_url: str, what: str) -> None:
        deadline = time.monotonic() + self.timeout
        wait = min(0.05, self.poll_interval)
        while True:
            info = self._json(
                self.http.get(job_url, headers=self._headers()),
                f"the status of the {what} query job",
            )
            state = info.get("state")
            if state == "JobComplete":
                return
            if state in _FINISHED:
                raise SourceError(
                    f"Salesforce Bulk 2.0 query job for {what} ended {state}: "
                    f"{info.get('errorMessage') or 'no reason given'}"
                )
            if time.monotonic() + wait > deadline:
                self.http.patch(job_url, json={"state": "Aborted"}, headers=self._headers())
                raise SourceError(
                    f"Salesforce Bulk 2.0 query job for {what} did not finish within "
                    f"bulk_timeout = {self.timeout:g} s (state {state}); it was aborted. "
                    "Raise bulk_timeout, or filter the object with a mapping's where"
                )
            self.sleep(wait)
            wait = min(wait * 2, self.poll_interval)

    def _page(
        self, job_url: str, locator: str | None, what: str, page: int
    ) -> Generator[dict[str, str], None, str | None]:
        """Yield one results page's rows; return the next page's locator (None at the end)."""
        params: dict[str, str | int] = {"maxRecords": self.page_size}
        if locator:
            params["locator"] = locator
        done = 0
        cuts = 0
        while True:
            response = self.http.get(
                f"{job_url}/results", params=params, headers=self._headers("text/csv"), stream=True
            )
            try:
                if response.status_code >= 300:
                    self._json(response, f"results page {page} of the {what} query job")
                expected = int(response.headers.get("Sforce-NumberOfRecords", "-1"))
                next_locator = response.headers.get("Sforce-Locator") or None
                seen = 0
                for row in _csv_rows(response):
                    seen += 1
                    if seen > done:
                        done = seen
                        yield row
                if 0 <= expected != seen:
                    raise _ShortPage(f"got {seen} of the {expected} rows announced")
                return None if next_locator in (None, "null") else next_locator
            except (_ShortPage, *_STREAM_ERRORS) as exc:
                cuts += 1
                if cuts > self.max_retries:
                    raise SourceError(
                        f"Salesforce Bulk 2.0 results page {page} of {what} kept breaking off "
                        f"after {done} rows ({type(exc).__name__}: {exc})"
                    ) from exc
                self.log.warning(
                    "Salesforce Bulk 2.0 results page %d of %s broke off after %d rows (%s); "
                    "fetching it again",
                    page,
                    what,
                    done,
                    type(exc).__name__,
                )
            finally:
                response.close()


def _csv_rows(response: requests.Response) -> Iterator[dict[str, str]]:
    response.raw.decode_content = True
    text = io.TextIOWrapper(response.raw, encoding="utf-8", newline="")
    reader = csv.reader(text)
    header = next(reader, None)
    if header is None:
        return
    for values in reader:
        yield dict(zip(header, values, strict=False))


def _decoded(response: requests.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return response.text
