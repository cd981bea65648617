"""What the local Datasets API server accepts: its token, secrets and record cap."""

from __future__ import annotations

from dataclasses import dataclass, field

#: The most records one import may hold, as the Datasets API document says.
MAX_RECORDS = 1000
#: The largest request body accepted: the 10 MB Mixpanel documents for its ingestion
#: requests (the Datasets API document gives none); larger ones are answered 413.
MAX_BODY_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class ServerOptions:
    """What the server accepts.

    :param project_token: the project's token (``token`` parameter and in every record).
    :param project_secret: the project secret, accepted for every dataset.
    :param dataset_secrets: dataset id → that dataset's own secret.
    :param max_records: the most records one import may hold.
    :param max_body_bytes: the largest request body accepted (413 above it).
    """

    project_token: str
    project_secret: str
    dataset_secrets: dict[str, str] = field(default_factory=dict)
    max_records: int = MAX_RECORDS
    max_body_bytes: int = MAX_BODY_BYTES

    def __repr__(self) -> str:
        return (
            f"ServerOptions(project_token={self.project_token!r}, project_secret='**', "
            f"dataset_secrets={sorted(self.dataset_secrets)})"
        )
