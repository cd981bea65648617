"""Whose record is it: the distinct_id of a Contact or Lead, and of a reference to one.

With ``identity = "id"`` a person's distinct_id is the record's Id and no state is kept.
With ``identity = "email"`` it is the lower-cased email, falling back to the Id; the
emails of the Contacts and Leads read so far are remembered so that a reference to one
(``ContactId``, ``WhoId``, a ``Contact__c`` lookup) resolves to the same distinct_id as
its profile. That map is bounded by the number of people, never by the number of events.

Under ``identity = "email"`` a Contact and an unconverted Lead with the same email are
one person; the Contact's profile is theirs, so the emails of the Contacts whose profile
a run loads are remembered too (one entry per Contact).
"""

from __future__ import annotations

from typing import Literal

__all__ = ["Identity", "account_id"]


def account_id(record_id: str) -> str:
    """The distinct_id of an account: ``account:<Id>``."""
    return f"account:{record_id}"


class Identity:
    """Resolves distinct_ids under one ``identity`` setting.

    :param mode: ``"id"`` or ``"email"``.
    """

    def __init__(self, mode: Literal["id", "email"]) -> None:
        self.mode = mode
        self._emails: dict[str, str] = {}
        self._contact_emails: set[str] = set()
        self.indexed: set[str] = set()

    def person(self, record_id: str, email: str | None) -> str:
        """The distinct_id of a Contact or Lead row, remembered for later references."""
        if self.mode == "email" and email:
            key = email.strip().lower()
            if key:
                self._emails[record_id] = key
                return key
        return record_id

    def contact(self, record_id: str, email: str | None) -> str:
        """The distinct_id of a Contact row whose profile is loaded; its email is the Contact's."""
        distinct_id = self.person(record_id, email)
        if distinct_id != record_id:
            self._contact_emails.add(distinct_id)
        return distinct_id

    def is_contact(self, distinct_id: str) -> bool:
        """True when ``distinct_id`` is the email of a Contact whose profile is loaded."""
        return distinct_id in self._contact_emails

    def of(self, record_id: str | None) -> str | None:
        """The distinct_id of the Contact or Lead ``record_id`` refers to (None for None)."""
        if not record_id:
            return None
        if self.mode == "email":
            return self._emails.get(record_id, record_id)
        return record_id
