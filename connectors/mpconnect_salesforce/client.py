"""One logged-in Salesforce session and the reads the connector makes through it.

REST reads use simple-salesforce's ``query_all_iter`` (pages fetched lazily through
``nextRecordsUrl``); large reads use Bulk 2.0 (:mod:`mpconnect_salesforce.bulk`). Either
way rows come out flat and typed (:mod:`mpconnect_salesforce.rows`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from mpconnect import RunContext, SourceError
from mpconnect_salesforce.auth import login
from mpconnect_salesforce.bulk import BulkQuery
from mpconnect_salesforce.errors import from_salesforce_error
from mpconnect_salesforce.quota import QuotaGuard
from mpconnect_salesforce.rows import Field, converter, flatten
from mpconnect_salesforce.settings import SalesforceSettings
from mpconnect_salesforce.transport import SalesforceTransport, url_keys

if TYPE_CHECKING:
    from simple_salesforce import Salesforce

__all__ = ["SalesforceClient", "soql"]


def soql(
    obj: str, fields: list[Field] | None, where: str | None = None, order: str | None = None
) -> str:
    """``SELECT ... FROM obj [WHERE ...] [ORDER BY ...]``; ``fields=None`` selects ``COUNT()``."""
    select = "COUNT()" if fields is None else ", ".join(f.path for f in fields)
    text = f"SELECT {select} FROM {obj}"
    text = f"{text} WHERE {where}" if where else text
    return f"{text} ORDER BY {order}" if order and fields is not None else text


class SalesforceClient:
    """A logged-in session: counts, describes and streams rows of SOQL queries.

    :param settings: the source's settings.
    :param log: the run's logger.
    :param ctx: the run's context: retries are counted in its summary, and an unreachable
        server's error names the source's setting that holds its address.
    """

    def __init__(
        self, settings: SalesforceSettings, log: logging.Logger, ctx: RunContext | None = None
    ) -> None:
        self.settings = settings
        self.log = log
        self.guard = QuotaGuard(settings.max_api_share)
        self.http = SalesforceTransport(
            self.guard,
            timeout=settings.timeout,
            max_retries=settings.max_retries,
            retry_wait=settings.retry_wait,
            ca_bundle=settings.ca_bundle,
            log=log,
            url_keys=url_keys(settings, ctx.setting_key) if ctx is not None else None,
            count_retry=ctx.count_retry if ctx is not None else None,
        )
        self._sf: Salesforce | None = None

    @property
    def sf(self) -> Salesforce:
        """The simple-salesforce client, logging in on first use."""
        if self._sf is None:
            from simple_salesforce import Salesforce

            session_id, instance = login(self.settings, self.http)
            self._sf = Salesforce(
                session_id=session_id,
                instance=instance,
                session=self.http,
                version=self.settings.api_version,
                object_pairs_hook=dict,
            )
            if self.settings.auth_mode() != "session":
                self.http.renew = self._renew
            self.log.info("logged in to Salesforce instance %s", instance)
        return self._sf

    def _renew(self) -> str:
        assert self._sf is not None
        session_id, _ = login(self.settings, self.http)
        self._sf.session_id = session_id
        self._sf.headers["Authorization"] = f"Bearer {session_id}"
        return session_id

    def _call(self, what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        from simple_salesforce.exceptions import SalesforceError, SalesforceExpiredSession

        try:
            return func(*args, **kwargs)
        except SalesforceExpiredSession as exc:
            raise self._expired(exc, what) from None
        except SalesforceError as exc:
            raise from_salesforce_error(exc, what) from None

    def _expired(self, exc: Exception, what: str) -> SourceError:
        if self.settings.auth_mode() == "session":
            return SourceError(
                f"Salesforce session expired while reading {what}; a session_id cannot be "
                "renewed: give a fresh one, or log in with username + password or JWT"
            )
        return SourceError(
            f"Salesforce session expired while reading {what} and logging in again did "
            f"not help: {from_salesforce_error(exc, what)}"
        )

    def describe(self, obj: str) -> dict[str, Any]:
        """The object's ``describe`` (fields with their types)."""
        return self._call(f"describe of {obj}", getattr(self.sf, obj).describe)

    def describe_global(self) -> dict[str, Any]:
        """The org's global ``describe`` (every object and whether it is queryable)."""
        return self._call("the list of objects", self.sf.describe) or {}

    def count(self, obj: str, where: str | None = None) -> int:
        """``SELECT COUNT() FROM obj [WHERE ...]`` over REST."""
        result = self._call(f"a count of {obj}", self.sf.query, soql(obj, None, where))
        return int(result["totalSize"])

    def server_now(self) -> datetime:
        """The server's time, from the ``Date`` of its latest answer (else this machine's)."""
        _ = self.sf
        stamp = self.http.server_date
        if stamp:
            try:
                return parsedate_to_datetime(stamp).astimezone(UTC)
            except (TypeError, ValueError):
                pass
        return datetime.now(UTC)

    def query(self, text: str, what: str) -> list[dict[str, Any]]:
        """A small REST query's flattened records (one page's worth; for check)."""
        result = self._call(what, self.sf.query, text)
        return [flatten(record) for record in result["records"]]

    def rows(
        self,
        obj: str,
        fields: list[Field],
        where: str | None,
        *,
        bulk: bool,
        order: str | None = None,
        all_rows: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Stream the rows of a query, flat and typed, over Bulk 2.0 or REST.

        :param all_rows: ``queryAll``: deleted rows (``IsDeleted = true``) too.
        """
        text = soql(obj, fields, where, order)
        plan = [(f.path, f.type, converter(f.type)) for f in fields]
        source = (
            self._bulk_rows(text, obj, all_rows) if bulk else self._rest_rows(text, obj, all_rows)
        )
        for raw in source:
            row = {}
            for path, kind, convert in plan:
                value = raw.get(path)
                if value is None or value == "":
                    value = None
                elif convert is not None:
                    try:
                        value = convert(value)
                    except (ValueError, TypeError, AttributeError) as exc:
                        raise SourceError(
                            f"Salesforce {obj} {raw.get('Id')}: field {path} ({kind}) has "
                            f"value {value!r} that does not parse: {exc}"
                        ) from None
                row[path] = value
            yield row

    def _rest_rows(self, text: str, obj: str, all_rows: bool) -> Iterator[dict[str, Any]]:
        from simple_salesforce.exceptions import SalesforceError, SalesforceExpiredSession

        options = {"Sforce-Query-Options": f"batchSize={self.settings.rest_batch_size}"}
        records = self.sf.query_all_iter(text, include_deleted=all_rows, headers=options)
        while True:
            try:
                record = next(records)
            except StopIteration:
                return
            except SalesforceExpiredSession as exc:
                raise self._expired(exc, obj) from None
            except SalesforceError as exc:
                raise from_salesforce_error(exc, f"the query of {obj}") from None
            yield flatten(record)

    def _bulk_rows(self, text: str, obj: str, all_rows: bool) -> Iterator[dict[str, str]]:
        sf = self.sf
        query = BulkQuery(
            self.http,
            f"{sf.bulk2_url}query",
            lambda: sf.session_id,
            page_size=self.settings.bulk_page_size,
            poll_interval=self.settings.bulk_poll_interval,
            timeout=self.settings.bulk_timeout,
            max_retries=self.settings.max_retries,
            log=self.log,
        )
        return query.rows(text, obj, "queryAll" if all_rows else "query")

    def close(self) -> None:
        """Close the HTTP session."""
        self.http.close()
