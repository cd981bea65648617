"""People across incremental runs under ``identity = "email"``.

A reference to a Contact or Lead (``ContactId``, ``WhoId``, a lookup) becomes that
person's email, which a full read learns from the people it reads. An incremental run
reads only changed people, so it recalls the others' emails from the records the last
runs left (``ctx.unchanged``). When a person's distinct_id itself changed (a new email,
a deleted or converted Lead, a deleted Contact, a new Contact taking an unconverted Lead's
email), records of other objects that point at that person change too, and only a full
read finds them all: the run reads everything, and says why.
"""

from __future__ import annotations

from mpconnect import Profile, RunContext
from mpconnect_salesforce.reads import Read, Run
from mpconnect_salesforce.rows import Field

__all__ = ["recall_people", "who_changed"]


def recall_people(run: Run, ctx: RunContext) -> dict[str, str]:
    """Remember the emails of the people the last runs read; return every Contact's and
    Lead's distinct_id as those runs made it (Id -> distinct_id)."""
    known: dict[str, str] = {}
    for record in ctx.unchanged("contacts"):
        if isinstance(record, Profile) and record.object_id:
            known[record.object_id] = record.distinct_id
            email = record.distinct_id if record.distinct_id != record.object_id else None
            run.identity.contact(record.object_id, email)
    for record in ctx.unchanged("leads"):
        if not record.object_id:
            continue
        if isinstance(record, Profile) or (
            record.name == "Lead Created" and not record.properties.get("converted")
        ):
            known[record.object_id] = record.distinct_id
            if record.distinct_id != record.object_id:
                run.identity.person(record.object_id, record.distinct_id)
    return known


def _person(row: dict[str, object]) -> str:
    email = str(row.get("Email") or "").strip().lower()
    return email or str(row["Id"])


def who_changed(run: Run, known: dict[str, str], since: dict[str, str | None]) -> str | None:
    """Why the people changed since the last run change other objects' records, or None.

    :param known: Id -> distinct_id, as :func:`recall_people` returned it.
    :param since: per people object, the SOQL start of its changes (None: read in full).
    """
    leads = {value for key, value in known.items() if key.startswith("00Q")}
    for obj in ("Contact", "Lead"):
        after = since.get(obj)
        if after is None:
            continue
        fields = [Field("Id", "id"), Field("Email", "email"), Field("IsDeleted", "boolean")]
        if obj == "Lead":
            fields.append(Field("IsConverted", "boolean"))
        read = Read(f"{obj} changes", obj, fields, f"SystemModstamp >= {after}", all_rows=True)
        for row in run.rows(read):
            before = known.get(row["Id"])
            gone = bool(row.get("IsDeleted") or row.get("IsConverted"))
            if before is not None and (gone or before != _person(row)):
                return f"{obj} {row['Id']} changed its email or was deleted or converted"
            if obj == "Contact" and before is None and not gone and _person(row) in leads:
                return f"new Contact {row['Id']} has the email of an unconverted Lead"
    return None
