"""What a run reads, and the run-wide state the streams share.

A :class:`Read` is one SOQL query: an object, its fields, a condition, and (once planned)
its record count and whether it goes over Bulk 2.0 or REST. A :class:`Run` carries what
every stream needs: the client, the identity resolver, the profile spool and quarantine.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mpconnect_salesforce.client import SalesforceClient, soql
from mpconnect_salesforce.identity import Identity
from mpconnect_salesforce.incremental import Sync
from mpconnect_salesforce.rows import Field, jsonable
from mpconnect_salesforce.settings import SalesforceSettings
from mpconnect_salesforce.spool import ProfileSpool

__all__ = ["Read", "Run"]

#: Longer SOQL than this goes over Bulk 2.0 (query in the body), not in a REST URL.
MAX_REST_SOQL = 12_000
#: Status checks a Bulk 2.0 job is expected to need, for the quota estimate.
_BULK_POLLS = 2


@dataclass
class Read:
    """One query of a run.

    :param name: names it in logs and messages, such as ``"Contact"``.
    :param object: the object's API name.
    :param fields: what to select, with types.
    :param where: a SOQL condition, or None.
    """

    name: str
    object: str
    fields: list[Field]
    where: str | None = None
    count: int | None = None
    bulk: bool = False
    order: str | None = None
    all_rows: bool = False
    gone: bool = False

    def decide(self, settings: SalesforceSettings, count: int) -> None:
        """Record the count and choose Bulk 2.0 or REST as ``use_bulk`` says."""
        self.count = count
        if isinstance(settings.use_bulk, bool):
            self.bulk = settings.use_bulk
        else:
            long_query = len(soql(self.object, self.fields, self.where, self.order)) > MAX_REST_SOQL
            self.bulk = count > settings.bulk_threshold or long_query

    def estimated_calls(self, settings: SalesforceSettings) -> int:
        """API calls this read will take."""
        count = self.count or 0
        if self.bulk:
            return 1 + _BULK_POLLS + max(1, math.ceil(count / settings.bulk_page_size))
        return max(1, math.ceil(count / settings.rest_batch_size))

    def describe(self) -> str:
        """Such as ``"Contact: 1200 over REST"``."""
        how = "Bulk 2.0" if self.bulk else "REST"
        count = "changes" if self.count is None else self.count
        return f"{self.name}: {count} over {how}"


@dataclass
class Run:
    """What the streams of one run share.

    :param quarantine: ``ctx.quarantine``: records a source row that cannot become a record.
    """

    settings: SalesforceSettings
    client: SalesforceClient
    identity: Identity
    spool: ProfileSpool
    quarantine: Callable[[str, str, Any], None]
    log: logging.Logger
    sync: Sync
    skipped: int = 0
    #: Unconverted Leads whose profile is a Contact's (same email, ``identity = "email"``).
    merged_leads: int = 0
    primary_contacts: dict[str, str] = field(default_factory=dict)
    #: Records the connector yielded so far.
    yielded: int = 0
    #: Per owner: open opportunities and their amount in cents (once opportunities are read).
    totals: dict[str, list[int]] | None = None

    def made(self) -> int:
        """Records made so far: yielded, and profiles waiting in the spool."""
        return self.yielded + self.spool.count

    def rows(self, read: Read) -> Iterator[dict[str, Any]]:
        """Stream a read's rows."""
        self.log.info("reading %s", read.describe())
        return self.client.rows(
            read.object,
            read.fields,
            read.where,
            bulk=read.bulk,
            order=None if read.bulk else read.order,  # Bulk 2.0 takes no ORDER BY
            all_rows=read.all_rows,
        )

    def skip(self, obj: str, row: dict[str, Any], reason: str) -> None:
        """Quarantine a row that cannot become a record, with the reason."""
        self.skipped += 1
        self.quarantine(f"Salesforce {obj} {row.get('Id')}", reason, jsonable(row))
