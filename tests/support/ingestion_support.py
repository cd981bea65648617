"""Helpers of the ingestion sink's tests: constants, records, the running local endpoints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpconnect.emulator.ingestion_api import IngestionEndpoints, IngestionFaults, IngestionProject
from mpconnect.emulator.server import LocalDatasetsServer
from mpconnect.records import make_insert_id
from mpconnect.store.datasets import DatasetStore, VersionContents

PROJECT_ID = "12345"
TOKEN = "local-token-4f2a"
SA_USER = "mpconnect-test.mp-service-account"
SA_SECRET = "sa-secret-9d81c0"
PROJECT_SECRET = "project-secret-77e3"
#: Every secret the tests configure: none may appear in a message or repr.
SECRETS = (SA_SECRET, PROJECT_SECRET)


def ingestion_project() -> IngestionProject:
    """Project 12345 with the token, the service account and the project secret above."""
    return IngestionProject(
        PROJECT_ID, token=TOKEN, service_accounts={SA_USER: SA_SECRET}, api_secret=PROJECT_SECRET
    )


def ingestion_mixpanel_toml(
    server: LocalDatasetsServer, *, token: str = TOKEN, project_id: str = PROJECT_ID
) -> str:
    """The ``[mixpanel]`` table of a configuration that loads through the ingestion sink
    into ``server`` (the service account's secret as ``${MP_SA_SECRET}``)."""
    return f"""
        [mixpanel]
        sink = "ingestion"
        project_token = "{token}"
        project_id = "{project_id}"
        service_account_user = "{SA_USER}"
        service_account_secret = "${{MP_SA_SECRET}}"
        api_url = "{server.url}"
        ca_bundle = "{server.ca_path}"
        """


def event(
    index: int,
    *,
    time: float | str = 1_700_000_000,
    distinct_id: str | None = None,
    insert_id: str | None = None,
    token: str = TOKEN,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Mixpanel event as the engine sends it (``Review`` number ``index``)."""
    return {
        "event": "Review",
        "properties": {
            "distinct_id": distinct_id if distinct_id is not None else f"user-{index % 5}",
            "time": time,
            "token": token,
            "$insert_id": insert_id if insert_id is not None else make_insert_id(index, "Review"),
            "rating": index % 10,
            **(extra or {}),
        },
    }


def profile_update(index: int, *, distinct_id: str | None = None) -> dict[str, Any]:
    """A ``$set`` profile update for user ``index``."""
    return {
        "$token": TOKEN,
        "$distinct_id": distinct_id or f"user-{index}",
        "$set": {"$name": f"User {index}", "plan": "gold"},
    }


@dataclass
class LocalIngestion:
    """The running local endpoints and what they stored."""

    url: str
    ca_path: Path
    store_path: Path
    endpoints: IngestionEndpoints

    @property
    def faults(self) -> IngestionFaults:
        """The failures to inject."""
        return self.endpoints.faults

    @property
    def store(self) -> DatasetStore:
        """The store behind the endpoints."""
        return self.endpoints.store

    @property
    def dataset_id(self) -> str:
        """The dataset holding what was accepted (``PROJECT12345``)."""
        return self.endpoints.dataset_id

    def contents(self) -> VersionContents:
        """What the project holds: events, people records, counts received."""
        return self.store.contents(self.dataset_id, self.endpoints.version_id())

    def events(self) -> list[dict[str, Any]]:
        """Every stored event."""
        return list(self.store.iter_events(self.dataset_id, self.endpoints.version_id()))

    def people(self) -> list[dict[str, Any]]:
        """Every stored profile update."""
        return list(self.store.iter_people(self.dataset_id, self.endpoints.version_id()))


def mixpanel_table(
    server: LocalIngestion, auth: str = "service account", **overrides: Any
) -> dict[str, Any]:
    """A ``[mixpanel]`` table for the ingestion sink into ``server``.

    :param auth: ``"service account"``, ``"project secret"`` or ``"project token"``.
    """
    table: dict[str, Any] = {
        "sink": "ingestion",
        "project_token": TOKEN,
        "api_url": server.url,
        "ca_bundle": str(server.ca_path),
        "timeout": 10,
    }
    if auth == "service account":
        table.update(
            project_id=PROJECT_ID,
            service_account_user=SA_USER,
            service_account_secret="${MP_SA_SECRET}",
        )
    elif auth == "project secret":
        table["secret"] = "${MP_PROJECT_SECRET}"
    table.update(overrides)
    return table
