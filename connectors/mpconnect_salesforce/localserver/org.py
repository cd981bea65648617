"""A seeded, consistent Salesforce org for the local Salesforce API.

Rows are made on demand from ``(seed, object, index)``: nothing is stored, so an org of a
million contacts costs no memory, and the same seed always gives the same org. Ids look
like Salesforce's (key prefix, 15 characters, 3-character case checksum) and encode the
row's index, so a reference is followed by computing the referenced row.

Consistency: a converted Lead points at a Contact (and that Contact's Account); Tasks never
point at converted Leads (Salesforce moves activities to the Contact); Opportunity history
ends at the Opportunity's current stage; a Case's account is its contact's account.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

from .changes import Changes
from .schema import BASE_TIME, CODES, PREFIX, SCHEMA, FieldDef, Row, Table, field_def, make_id

__all__ = ["BASE_TIME", "FieldDef", "Org", "Row", "Table", "make_id"]
STAGES = [
    ("Prospecting", 10.0),
    ("Qualification", 20.0),
    ("Needs Analysis", 30.0),
    ("Proposal/Price Quote", 60.0),
    ("Negotiation/Review", 80.0),
    ("Closed Won", 100.0),
    ("Closed Lost", 0.0),
]
_PROBABILITY = dict(STAGES)
FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Radia"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Thompson"]
COUNTRIES = ["France", "United States", "Japan", "Brazil", "Kenya", "Germany"]
SOURCES = ["Web", "Phone Inquiry", "Partner Referral", "Trade Show"]


class Org(Changes):
    """A seeded org.

    :param seed: the same seed gives the same org.
    """

    def __init__(
        self,
        seed: int = 7,
        *,
        accounts: int = 12,
        contacts: int = 60,
        leads: int = 40,
        opportunities: int = 30,
        cases: int = 25,
        tasks: int = 50,
        demo_requests: int = 20,
        members: int = 15,
    ) -> None:
        self.seed = seed
        self.org_id = make_id("00D", seed)
        sizes = {
            "Account": accounts,
            "Contact": contacts,
            "Lead": leads,
            "Opportunity": opportunities,
            "OpportunityContactRole": opportunities * 2,
            "OpportunityHistory": opportunities * 4,
            "Case": cases,
            "Task": tasks,
            "Demo_Request__c": demo_requests,
            "Member__c": min(members, contacts),
            "Organization": 1,
            "User": 3,
        }
        self.sizes = sizes
        self.tables: dict[str, Table] = {}
        super().__init__()
        for name, prefix, specs in SCHEMA:
            maker = getattr(self, "_" + name.lower().replace("__c", "_c"))
            self.tables[name.lower()] = Table(
                name, prefix, [field_def(s) for s in specs], sizes[name], maker, self.now
            )

    # -- access ------------------------------------------------------------------------

    def table(self, name: str) -> Table | None:
        """The object called ``name`` (case-insensitive), or None."""
        return self.tables.get(name.lower())

    def __getitem__(self, name: str) -> Table:
        table = self.table(name)
        if table is None:
            raise KeyError(name)
        return table

    def by_id(self, record_id: str | None) -> tuple[Table, Row] | None:
        """The object and row an id points at."""
        if not record_id:
            return None
        for table in self.tables.values():
            if record_id.startswith(table.prefix):
                row = table.get(record_id)
                return (table, row) if row is not None else None
        return None

    def rows(self, name: str) -> list[Row]:
        """Every row of an object, as a list (for tests' expectations; small orgs only)."""
        return list(self[name])

    # -- generation --------------------------------------------------------------------

    def _rng(self, name: str, index: int) -> random.Random:
        return random.Random(hash((self.seed, CODES[name], index)))

    def _id(self, name: str, index: int) -> str:
        return make_id(PREFIX[name], index)

    def _pick(self, name: str, rng: random.Random) -> str | None:
        size = self.sizes[name]
        return self._id(name, rng.randrange(size)) if size else None

    def _created(self, rng: random.Random) -> datetime:
        return BASE_TIME + timedelta(seconds=rng.randrange(0, 400 * 86400))

    def _owner(self, rng: random.Random) -> str:
        return self._id("User", rng.randrange(3))

    def _organization(self, index: int) -> Row:
        return {
            "Id": self.org_id,
            "Name": "Acme Test Org",
            "OrganizationType": "Developer Edition",
            "IsSandbox": False,
        }

    def _user(self, index: int) -> Row:
        return {
            "Id": self._id("User", index),
            "Name": f"Owner {index}",
            "Email": f"owner{index}@acme.test",
        }

    def _account(self, index: int) -> Row:
        rng = self._rng("Account", index)
        return {
            "Id": self._id("Account", index),
            "Name": f"{rng.choice(LAST)} Industries {index}",
            "Industry": rng.choice(["Technology", "Retail", "Finance"]),
            "OwnerId": self._owner(rng),
            "CreatedDate": self._created(rng),
        }

    def _person(self, name: str, index: int, rng: random.Random) -> Row:
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = None
        if rng.random() < 0.85:
            email = f"{first}.{last}{index}@example.com".lower()
            if rng.random() < 0.25:
                email = f"{first}.{last}{index}@Example.COM"
        return {
            "Id": self._id(name, index),
            "FirstName": first,
            "LastName": last,
            "Name": f"{first} {last}",
            "Email": email,
            "Phone": f"+1 555 {index:07d}" if rng.random() < 0.7 else None,
            "Title": rng.choice(["CTO", "Analyst", "VP Sales"]) if rng.random() < 0.6 else None,
            "LeadSource": rng.choice(SOURCES) if rng.random() < 0.7 else None,
            "OwnerId": self._owner(rng),
            "CreatedDate": self._created(rng),
        }

    def _contact(self, index: int) -> Row:
        rng = self._rng("Contact", index)
        row = self._person("Contact", index, rng)
        account = index % self.sizes["Account"] if self.sizes["Account"] else 0
        has_account = self.sizes["Account"] and rng.random() < 0.9
        country = rng.choice(COUNTRIES) if rng.random() < 0.8 else None
        row.update(
            {
                "AccountId": self._id("Account", account) if has_account else None,
                "MailingCountry": country,
                "MailingAddress": {"city": "Paris", "country": country} if country else None,
            }
        )
        return row

    def _lead(self, index: int) -> Row:
        rng = self._rng("Lead", index)
        row = self._person("Lead", index, rng)
        converted = bool(self.sizes["Contact"]) and rng.random() < 0.3
        row.update(
            {
                "Company": f"{rng.choice(LAST)} Labs",
                "Country": rng.choice(COUNTRIES),
                "IsConverted": converted,
                "ConvertedDate": None,
                "ConvertedContactId": None,
                "ConvertedAccountId": None,
                "ConvertedOpportunityId": None,
                "Status": rng.choice(
                    ["Open - Not Contacted", "Working - Contacted", "Closed - Not Converted"]
                ),
            }
        )
        if converted:
            contact_id = self._pick("Contact", rng)
            contact = self["Contact"].get(contact_id)
            row.update(
                {
                    "Status": "Closed - Converted",
                    "ConvertedContactId": contact_id,
                    "ConvertedAccountId": contact["AccountId"] if contact else None,
                    "ConvertedDate": (
                        row["CreatedDate"] + timedelta(days=rng.randrange(1, 60))
                    ).date(),
                    "ConvertedOpportunityId": (
                        self._pick("Opportunity", rng) if rng.random() < 0.5 else None
                    ),
                }
            )
        return row

    def _opportunity(self, index: int) -> Row:
        rng = self._rng("Opportunity", index)
        stage, probability = rng.choice(STAGES)
        created = self._created(rng)
        has_account = self.sizes["Account"] and rng.random() < 0.85
        return {
            "Id": self._id("Opportunity", index),
            "Name": f"Deal {index}",
            "AccountId": self._pick("Account", rng) if has_account else None,
            "StageName": stage,
            "Probability": probability,
            "IsClosed": stage.startswith("Closed"),
            "IsWon": stage == "Closed Won",
            "Amount": round(rng.uniform(1000, 100000), 2) if rng.random() < 0.95 else None,
            "Type": rng.choice(["New Customer", "Existing Customer - Upgrade"])
            if rng.random() < 0.8
            else None,
            "CloseDate": (created + timedelta(days=rng.randrange(10, 120))).date(),
            "CreatedDate": created,
            "OwnerId": self._owner(rng),
        }

    def _opportunitycontactrole(self, index: int) -> Row | None:
        opportunity, kind = divmod(index, 2)
        rng = self._rng("OpportunityContactRole", index)
        if not self.sizes["Contact"] or rng.random() >= (0.6 if kind == 0 else 0.3):
            return None
        return {
            "Id": self._id("OpportunityContactRole", index),
            "OpportunityId": self._id("Opportunity", opportunity),
            "ContactId": self._pick("Contact", rng),
            "IsPrimary": kind == 0,
            "Role": "Decision Maker" if kind == 0 else "Influencer",
            "CreatedDate": self._created(rng),
        }

    def _opportunityhistory(self, index: int) -> Row | None:
        number, step = divmod(index, 4)
        table = self["Opportunity"]
        opportunity = table.make(number)
        if opportunity is None or opportunity["Id"] in table.bin:
            return None  # deleting an opportunity deletes its history
        steps = 1 + self._rng("OpportunityHistory", number * 4).randrange(4)
        if step >= steps:
            return None
        stage = opportunity["StageName"] if step == steps - 1 else STAGES[min(step, 4)][0]
        rng = self._rng("OpportunityHistory", index)
        return {
            "Id": self._id("OpportunityHistory", index),
            "OpportunityId": opportunity["Id"],
            "StageName": stage,
            "Probability": _PROBABILITY[stage],
            "Amount": opportunity["Amount"],
            "CloseDate": opportunity["CloseDate"],
            "CreatedDate": opportunity["CreatedDate"]
            + timedelta(days=step, minutes=rng.randrange(60)),
        }

    def _case(self, index: int) -> Row:
        rng = self._rng("Case", index)
        contact_id = self._pick("Contact", rng) if rng.random() < 0.75 else None
        contact = self["Contact"].get(contact_id)
        account = (
            contact["AccountId"]
            if contact
            else (self._pick("Account", rng) if rng.random() < 0.6 else None)
        )
        status = rng.choice(["New", "Working", "Escalated", "Closed", "Closed"])
        created = self._created(rng)
        return {
            "Id": self._id("Case", index),
            "CaseNumber": f"{index + 1:08d}",
            "ContactId": contact_id,
            "AccountId": account,
            "Status": status,
            "IsClosed": status == "Closed",
            "ClosedDate": created + timedelta(hours=rng.randrange(1, 200))
            if status == "Closed"
            else None,
            "Priority": rng.choice(["High", "Medium", "Low"]),
            "Origin": rng.choice(["Phone", "Email", "Web"]),
            "Type": rng.choice(["Problem", "Question", None]),
            "Reason": rng.choice(["Performance", "Installation", None]),
            "Subject": f"Case {index}",
            "CreatedDate": created,
        }

    def _task(self, index: int) -> Row:
        rng = self._rng("Task", index)
        who: str | None = None
        draw = rng.random()
        if draw < 0.5:
            who = self._pick("Contact", rng)
        elif draw < 0.75 and self.sizes["Lead"]:
            lead = self["Lead"].make(rng.randrange(self.sizes["Lead"]))
            assert lead is not None  # as seeded: a task keeps its WhoId whatever happens later
            who = lead["ConvertedContactId"] if lead["IsConverted"] else lead["Id"]
        contact = self["Contact"].get(who)
        completed = rng.random() < 0.6
        created = self._created(rng)
        return {
            "Id": self._id("Task", index),
            "WhoId": who,
            "WhatId": self._pick("Opportunity", rng) if rng.random() < 0.5 else None,
            "AccountId": contact["AccountId"] if contact else None,
            "OwnerId": self._owner(rng),
            "Subject": rng.choice(["Call", "Send quote", "Demo"]),
            "Status": "Completed" if completed else rng.choice(["Not Started", "In Progress"]),
            "IsClosed": completed,
            "Priority": rng.choice(["Normal", "High"]),
            "Type": rng.choice(["Call", "Email", "Meeting", None]),
            "TaskSubtype": rng.choice(["Task", "Email", "Call"]),
            "ActivityDate": (created + timedelta(days=3)).date(),
            "CompletedDateTime": created + timedelta(hours=5)
            if completed and rng.random() < 0.8
            else None,
            "LastModifiedDate": created + timedelta(days=1),
            "CreatedDate": created,
        }

    def _demo_request_c(self, index: int) -> Row:
        rng = self._rng("Demo_Request__c", index)
        return {
            "Id": self._id("Demo_Request__c", index),
            "Name": f"DR-{index:05d}",
            "Contact__c": self._pick("Contact", rng) if rng.random() < 0.85 else None,
            "Product__c": rng.choice(["Analytics", "Warehouse", "Streams"]),
            "Region__c": rng.choice(["EMEA", "AMER", "APAC", None]),
            "Status__c": rng.choice(["New", "Qualified", "Spam", None]),
            "Seats__c": float(rng.randrange(1, 500)),
            "Is_Trial__c": rng.random() < 0.5,
            "Requested_On__c": date(2023, 1, 1) + timedelta(days=rng.randrange(300)),
            "CreatedDate": self._created(rng),
            "OwnerId": self._owner(rng),
        }

    def _member_c(self, index: int) -> Row:
        rng = self._rng("Member__c", index)
        return {
            "Id": self._id("Member__c", index),
            "Name": f"M-{index:05d}",
            "Contact__c": self._id("Contact", index) if index % 6 != 5 else None,
            "Tier__c": rng.choice(["Gold", "Silver", "Bronze"]),
            "Points__c": float(rng.randrange(0, 10000)),
            "Joined__c": date(2022, 1, 1) + timedelta(days=rng.randrange(700)),
            "CreatedDate": self._created(rng),
        }
