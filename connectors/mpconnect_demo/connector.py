"""Synthetic airline reviews and their reviewers."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime

from pydantic import Field

import mpconnect

AIRLINES = (
    "adria-airways",
    "aegean-airlines",
    "aer-lingus",
    "air-canada",
    "air-france",
    "air-new-zealand",
    "alaska-airlines",
    "british-airways",
    "cathay-pacific",
    "delta-air-lines",
    "emirates",
    "etihad-airways",
    "eva-air",
    "finnair",
    "iberia",
    "japan-airlines",
    "klm",
    "lufthansa",
    "qantas",
    "qatar-airways",
    "singapore-airlines",
    "swiss",
    "tap-portugal",
    "turkish-airlines",
    "united-airlines",
    "virgin-atlantic",
)
CABINS = ("Economy", "Premium Economy", "Business Class", "First Class")
CABIN_WEIGHTS = (70, 15, 12, 3)
COUNTRIES = (
    "United Kingdom",
    "United States",
    "Australia",
    "Canada",
    "Germany",
    "India",
    "Singapore",
    "France",
    "Netherlands",
    "Brazil",
)
FIRST_NAMES = (
    "Ada",
    "Ben",
    "Chloe",
    "Dev",
    "Eli",
    "Fay",
    "Gus",
    "Hana",
    "Ivo",
    "Jun",
    "Kai",
    "Lea",
    "Max",
    "Nia",
    "Oli",
    "Pia",
    "Raj",
    "Sam",
    "Tia",
    "Uma",
)
LAST_NAMES = (
    "Smith",
    "Khan",
    "Garcia",
    "Müller",
    "Rossi",
    "Tanaka",
    "Silva",
    "Dubois",
    "Novak",
    "Okafor",
    "Larsen",
    "Kowalski",
)
EPOCH_START = int(datetime(2023, 1, 1, tzinfo=UTC).timestamp())
SPAN_SECONDS = 2 * 365 * 86400


class DemoSettings(mpconnect.ConnectorSettings):
    """Settings of the ``demo`` connector."""

    events: int = Field(default=10_000, ge=0, description="how many Airline Review events")
    reviewers: int | None = Field(
        default=None, ge=1, description="how many reviewers (default: one per 10 events)"
    )
    seed: int = Field(default=42, description="random seed; same seed, same data")
    bad_records: int = Field(
        default=0, ge=0, description="extra events with an invalid time, to see quarantine work"
    )


class DemoConnector(mpconnect.Connector):
    """Deterministic synthetic airline reviews (events) by reviewers (people)."""

    name = "demo"
    description = "synthetic airline reviews, no account needed"
    Settings = DemoSettings

    settings: DemoSettings

    @property
    def reviewer_count(self) -> int:
        """How many reviewer profiles the settings produce."""
        return self.settings.reviewers or max(1, self.settings.events // 10)

    def check(self, ctx: mpconnect.RunContext) -> str:
        """Nothing to reach: describe what a run produces."""
        return (
            f"demo data: {self.settings.events} events, {self.reviewer_count} reviewers, "
            f"seed {self.settings.seed}"
        )

    def events(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Event]:
        """Yield ``Airline Review`` events, then any deliberately bad ones."""
        rng = random.Random(self.settings.seed)
        reviewers = self.reviewer_count
        rand = rng.random  # random() is many times cheaper than randrange()
        airlines, n_airlines = AIRLINES, len(AIRLINES)
        cabins = [
            cabin
            for cabin, weight in zip(CABINS, CABIN_WEIGHTS, strict=True)
            for _ in range(weight)
        ]
        n_cabins = len(cabins)
        days = [
            datetime.fromtimestamp(EPOCH_START + day * 86400, UTC).date().isoformat()
            for day in range(SPAN_SECONDS // 86400 + 1)
        ]
        Event = mpconnect.Event
        for index in range(self.settings.events):
            offset = int(rand() * SPAN_SECONDS)
            rating = 1 + int(rand() * 10)
            # Positional arguments (name, distinct_id, time, object_id, properties):
            # half the cost of keywords in this loop.
            yield Event(
                "Airline Review",
                f"reviewer-{int(rand() * reviewers)}",
                EPOCH_START + offset,
                f"review-{index}",
                {
                    "airline_name": airlines[int(rand() * n_airlines)],
                    "rating": rating,
                    "cabin_class": cabins[int(rand() * n_cabins)],
                    "recommended": rating >= 7,
                    "seat_comfort": 1 + int(rand() * 5),
                    "value_for_money": 1 + int(rand() * 5),
                    "review_date": days[offset // 86400],
                },
            )
        for index in range(self.settings.bad_records):
            yield Event(
                name="Airline Review",
                distinct_id=f"reviewer-{index % reviewers}",
                time=datetime(2024, 1, 1),  # naive on purpose: quarantined
                object_id=f"bad-review-{index}",
            )

    def people(self, ctx: mpconnect.RunContext) -> Iterator[mpconnect.Profile]:
        """Yield one profile per reviewer."""
        rng = random.Random(self.settings.seed + 1)
        for index in range(self.reviewer_count):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            yield mpconnect.Profile(
                distinct_id=f"reviewer-{index}",
                object_id=f"reviewer-{index}",
                set={
                    "$name": f"{first} {last}",
                    "$first_name": first,
                    "$last_name": last,
                    "$email": f"{first.lower()}.{index}@example.com",
                    "country": rng.choice(COUNTRIES),
                    "frequent_flyer_tier": rng.choice(("none", "silver", "gold", "platinum")),
                    "$created": datetime.fromtimestamp(
                        EPOCH_START - rng.randrange(SPAN_SECONDS), UTC
                    ),
                },
            )
