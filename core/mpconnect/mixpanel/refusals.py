"""Telling a refusal of the request from refusals of records, in Mixpanel's answers.

Mixpanel's strict mode lists the records it refused with their field and reason. When it
refuses every record of a batch for the same reason, the fault is rarely in the records:
a wrong project token is refused record by record, yet no record of the run can pass. Such
a batch fails the run at once, naming the key to fix, instead of quarantining the whole
source record by record.
"""

from __future__ import annotations

from typing import Any

#: The fields carrying the project token in an event and in a profile update.
TOKEN_FIELDS = frozenset({"properties.token", "$token", "token"})
#: Fewer records all refused alike may well be bad records; from this many, it is the request.
SAME_REASON_MIN = 10


def request_refusal(failed: list[Any], count: int, imported: int, what: str) -> str | None:
    """Return the error for a batch refused as a whole, or None for record-level refusals.

    :param failed: Mixpanel's ``failed_records`` (``{"index", "field", "message"}`` each).
    :param count: records in the batch.
    :param imported: records Mixpanel took.
    :param what: the request, such as ``/import of 1000 events``.
    """
    if imported or not failed or len(failed) < count:
        return None
    items = [item if isinstance(item, dict) else {} for item in failed]
    fields = {str(item.get("field") or "") for item in items}
    messages = {str(item.get("message") or "") for item in items}
    if len(fields) != 1:
        return None
    (field,) = fields
    message = next(iter(messages))[:300]
    if field in TOKEN_FIELDS:
        return (
            f"{what}: Mixpanel refused all {count} records: {message}. The records carry "
            "the token of mixpanel.project_token, which is not this project's: set "
            "mixpanel.project_token to the project's token (Project Settings in "
            "Mixpanel), then run again (nothing was quarantined)"
        )
    if count >= SAME_REASON_MIN and len(messages) == 1:
        return (
            f"{what}: Mixpanel refused all {count} records for the same reason "
            f"({field or 'the record'}: {message}); that is about the request, not the "
            "records: check the [mixpanel] settings and the connector's mapping of "
            f"{field or 'records'}, then run again (nothing was quarantined)"
        )
    return None
