"""The local org's schema: objects, their fields, ids, and tables of rows.

A :class:`Table` makes its seeded rows on demand and keeps what tests changed since: rows
created, rows edited, and the recycle bin of deleted rows (kept ``RECYCLE_BIN_DAYS``, seen
only by ``queryAll``). Every row carries ``SystemModstamp`` and ``IsDeleted`` as in Salesforce.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "BASE_TIME",
    "CODES",
    "PREFIX",
    "RECYCLE_BIN_DAYS",
    "SCHEMA",
    "FieldDef",
    "Row",
    "Table",
    "field_def",
    "make_id",
]

Row = dict[str, Any]
BASE_TIME = datetime(2023, 1, 1, tzinfo=UTC)
#: How long deleted rows stay in the recycle bin (Salesforce: 15 days).
RECYCLE_BIN_DAYS = 15
_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def make_id(prefix: str, index: int) -> str:
    """An 18-character Salesforce-style id whose digits are ``index``."""
    body = f"{prefix}{index:012d}"
    suffix = ""
    for chunk in range(3):
        part = body[chunk * 5 : chunk * 5 + 5]
        suffix += _CHECKSUM[sum(1 << i for i, c in enumerate(part) if c.isupper())]
    return body + suffix


@dataclass(frozen=True)
class FieldDef:
    """A field as ``describe`` lists it."""

    name: str
    type: str = "string"
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None

    def describe(self) -> dict[str, Any]:
        """The field's entry in a ``describe`` answer."""
        return {
            "name": self.name,
            "label": self.name.replace("__c", "").replace("_", " "),
            "type": self.type,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "nillable": self.name != "Id",
            "custom": self.name.endswith("__c"),
            "filterable": True,
        }


def field_def(spec: str) -> FieldDef:
    """``"AccountId:reference>Account@Account"`` into a FieldDef."""
    name, _, rest = spec.partition(":")
    kind, _, refs = (rest or "string").partition(">")
    targets, _, rel = refs.partition("@")
    return FieldDef(name, kind, tuple(t for t in targets.split("|") if t), rel or None)


@dataclass
class Table:
    """One object: its fields, a row maker over ``range(size)`` (None: no row there), and
    the changes made since seeding (rows created, edited, and deleted into the bin)."""

    name: str
    prefix: str
    fields: list[FieldDef]
    size: int
    make: Callable[[int], Row | None]
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    by_name: dict[str, FieldDef] = field(init=False)
    created: list[Row] = field(default_factory=list)
    edits: dict[str, Row] = field(default_factory=dict)
    bin: dict[str, Row] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_name = {f.name.lower(): f for f in self.fields}

    @property
    def custom(self) -> bool:
        """True for custom objects (``__c``)."""
        return self.name.endswith("__c")

    def field(self, name: str) -> FieldDef | None:
        """The field called ``name`` (SOQL names are case-insensitive)."""
        return self.by_name.get(name.lower())

    def relationship(self, name: str) -> FieldDef | None:
        """The reference field whose relationship is called ``name``."""
        lowered = name.lower()
        for f in self.fields:
            if f.relationship_name and f.relationship_name.lower() == lowered:
                return f
        return None

    def row(self, index: int) -> Row | None:
        """The live row at ``index`` (seeded, then created ones), or None."""
        if 0 <= index < self.size:
            base = self.make(index)
            if base is None:
                return None
            base.setdefault("IsDeleted", False)
            base.setdefault(
                "SystemModstamp",
                base.get("LastModifiedDate") or base.get("CreatedDate") or BASE_TIME,
            )
        elif 0 <= index - self.size < len(self.created):
            base = self.created[index - self.size]
        else:
            return None
        record_id = base["Id"]
        if self.bin and record_id in self.bin:
            return None
        return self.edits.get(record_id, base) if self.edits else base

    def __iter__(self) -> Iterator[Row]:
        for index in range(self.size + len(self.created)):
            row = self.row(index)
            if row is not None:
                yield row

    def deleted(self) -> Iterator[Row]:
        """The rows in the recycle bin, after emptying it of rows older than its retention."""
        oldest = self.now() - timedelta(days=RECYCLE_BIN_DAYS)
        for record_id in [k for k, row in self.bin.items() if row["SystemModstamp"] < oldest]:
            del self.bin[record_id]
        yield from sorted(self.bin.values(), key=lambda row: str(row["Id"]))

    def get(self, record_id: str | None) -> Row | None:
        """The live row with this id, or None."""
        if not record_id or not record_id.startswith(self.prefix):
            return None
        try:
            return self.row(int(record_id[3:15]))
        except ValueError:
            return None


_PERSON = [
    "Id:id",
    "FirstName",
    "LastName",
    "Name",
    "Email:email",
    "Phone:phone",
    "Title",
    "LeadSource:picklist",
    "OwnerId:reference>User@Owner",
    "CreatedDate:datetime",
]
_SCHEMA: list[tuple[str, str, list[str]]] = [
    ("Organization", "00D", ["Id:id", "Name", "OrganizationType:picklist", "IsSandbox:boolean"]),
    ("User", "005", ["Id:id", "Name", "Email:email"]),
    (
        "Account",
        "001",
        [
            "Id:id",
            "Name",
            "Industry:picklist",
            "OwnerId:reference>User@Owner",
            "CreatedDate:datetime",
        ],
    ),
    (
        "Contact",
        "003",
        [
            *_PERSON,
            "AccountId:reference>Account@Account",
            "MailingCountry",
            "MailingAddress:address",
        ],
    ),
    (
        "Lead",
        "00Q",
        [
            *_PERSON,
            "Company",
            "Country",
            "Status:picklist",
            "IsConverted:boolean",
            "ConvertedDate:date",
            "ConvertedContactId:reference>Contact@ConvertedContact",
            "ConvertedAccountId:reference>Account@ConvertedAccount",
            "ConvertedOpportunityId:reference>Opportunity@ConvertedOpportunity",
        ],
    ),
    (
        "Opportunity",
        "006",
        [
            "Id:id",
            "Name",
            "AccountId:reference>Account@Account",
            "StageName:picklist",
            "Probability:percent",
            "IsClosed:boolean",
            "IsWon:boolean",
            "Amount:currency",
            "Type:picklist",
            "CloseDate:date",
            "CreatedDate:datetime",
            "OwnerId:reference>User@Owner",
        ],
    ),
    (
        "OpportunityContactRole",
        "00K",
        [
            "Id:id",
            "OpportunityId:reference>Opportunity@Opportunity",
            "ContactId:reference>Contact@Contact",
            "IsPrimary:boolean",
            "Role:picklist",
            "CreatedDate:datetime",
        ],
    ),
    (
        "OpportunityHistory",
        "008",
        [
            "Id:id",
            "OpportunityId:reference>Opportunity@Opportunity",
            "StageName:picklist",
            "Probability:percent",
            "Amount:currency",
            "CloseDate:date",
            "CreatedDate:datetime",
        ],
    ),
    (
        "Case",
        "500",
        [
            "Id:id",
            "CaseNumber",
            "ContactId:reference>Contact@Contact",
            "AccountId:reference>Account@Account",
            "Status:picklist",
            "IsClosed:boolean",
            "ClosedDate:datetime",
            "Priority:picklist",
            "Origin:picklist",
            "Type:picklist",
            "Reason:picklist",
            "Subject",
            "CreatedDate:datetime",
        ],
    ),
    (
        "Task",
        "00T",
        [
            "Id:id",
            "WhoId:reference>Contact|Lead@Who",
            "WhatId:reference>Opportunity|Account@What",
            "AccountId:reference>Account@Account",
            "OwnerId:reference>User@Owner",
            "Subject",
            "Status:picklist",
            "IsClosed:boolean",
            "Priority:picklist",
            "Type:picklist",
            "TaskSubtype:picklist",
            "ActivityDate:date",
            "CompletedDateTime:datetime",
            "LastModifiedDate:datetime",
            "CreatedDate:datetime",
        ],
    ),
    (
        "Demo_Request__c",
        "a01",
        [
            "Id:id",
            "Name",
            "Contact__c:reference>Contact@Contact__r",
            "Product__c:picklist",
            "Region__c:picklist",
            "Status__c:picklist",
            "Seats__c:double",
            "Is_Trial__c:boolean",
            "Requested_On__c:date",
            "CreatedDate:datetime",
            "OwnerId:reference>User@Owner",
        ],
    ),
    (
        "Member__c",
        "a02",
        [
            "Id:id",
            "Name",
            "Contact__c:reference>Contact@Contact__r",
            "Tier__c:picklist",
            "Points__c:double",
            "Joined__c:date",
            "CreatedDate:datetime",
        ],
    ),
]
_STAMPS = ["SystemModstamp:datetime", "IsDeleted:boolean"]
#: Every object: name, key prefix, field specs (``"Name:type>Target@Relationship"``).
SCHEMA = [(name, prefix, [*specs, *_STAMPS]) for name, prefix, specs in _SCHEMA]
PREFIX = {name: prefix for name, prefix, _ in SCHEMA}
CODES = {name: i for i, (name, _, _) in enumerate(SCHEMA)}
