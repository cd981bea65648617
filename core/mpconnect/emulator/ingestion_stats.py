"""What the ingestion endpoints received, for tests and benchmarks."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class IngestionStats:
    """What the endpoints received: requests per path and status, records, gzip use."""

    requests: Counter[tuple[str, int]] = field(default_factory=Counter)
    gzip_requests: Counter[str] = field(default_factory=Counter)
    batch_sizes: dict[str, list[int]] = field(
        default_factory=lambda: {"/import": [], "/engage": []}
    )
    largest_body: dict[str, int] = field(default_factory=lambda: {"/import": 0, "/engage": 0})
    records_stored: Counter[str] = field(default_factory=Counter)
    records_failed: Counter[str] = field(default_factory=Counter)
    #: How ``/import`` requests authenticated: service account, project token or secret.
    auth: Counter[str] = field(default_factory=Counter)
    #: The query parameters of the last request to each path.
    last_params: dict[str, dict[str, str]] = field(default_factory=dict)

    def count(self, path: str, status: int | None = None) -> int:
        """Requests to ``path`` (answered ``status``, if given)."""
        return sum(
            n
            for (p, s), n in self.requests.items()
            if p == path and (status is None or s == status)
        )
