"""Helpers of the Datasets API tests: credentials, raw calls, records."""

from __future__ import annotations

import base64
import json
from typing import Any

import requests

from mpconnect.config import MixpanelConfig
from mpconnect.emulator.server import LocalDatasetsServer

PROJECT_TOKEN = "PROJECT_TOKEN"
API_SECRET = "API_SECRET"
DATASET_SECRET = "DATASET_SECRET"
DATASETS = ("TESTDATA", "SKYTRAX", "DEMO")
#: Short, so the wait-until-live paths run, but fast.
LIVE_DELAY = 0.2


def datasets_mixpanel(server: LocalDatasetsServer) -> MixpanelConfig:
    """``[mixpanel]`` for the datasets sink loading into ``server`` with the credentials above."""
    return MixpanelConfig(
        sink="datasets",
        api_url=server.url,
        project_token=PROJECT_TOKEN,
        secret=API_SECRET,
        ca_bundle=server.ca_path,
    )


class Api:
    """Raw HTTPS calls to a server, as curl makes them: Basic auth, form fields."""

    def __init__(self, server: LocalDatasetsServer, secret: str | None = API_SECRET) -> None:
        self.server = server
        self.session = requests.Session()
        if secret is not None:
            self.session.auth = (secret, "")

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send ``method path``; keywords go to ``requests`` (``data=``, ``params=``...)."""
        kwargs.setdefault("timeout", 10)
        kwargs.setdefault("verify", str(self.server.ca_path))  # not the session's: see client
        return self.session.request(method, self.server.url + path, **kwargs)

    def create(self, dataset_id: str = "TESTDATA") -> str:
        """Create a version and return its id."""
        response = self("POST", f"/datasets/{dataset_id}/versions", data={"token": PROJECT_TOKEN})
        assert response.status_code == 200, response.text
        return response.json()["data"]["version_id"]

    def import_(
        self, kind: str, dataset_id: str, version_id: str, records: Any, **fields: str
    ) -> requests.Response:
        """POST ``records`` (JSON, base64) to ``/import-<kind>`` with ``verbose=1``."""
        data = {
            "data": b64(records),
            "verbose": "1",
            "dataset_id": dataset_id,
            "dataset_version": version_id,
            **fields,
        }
        return self("POST", f"/import-{kind}", data=data)

    def close(self) -> None:
        """Close the session."""
        self.session.close()


def b64(records: Any) -> str:
    """Base64 of ``records`` as JSON, as the document builds ``data``."""
    return base64.b64encode(json.dumps(records).encode()).decode()


def event(i: int = 0, token: str = PROJECT_TOKEN, **props: Any) -> dict[str, Any]:
    """A valid event for the document's Skytrax example."""
    properties = {
        "distinct_id": f"user-{i % 7}",
        "time": 1395619200 + i,
        "token": token,
        "$insert_id": f"review-{i}",
        "airline_name": "adria-airways",
    }
    properties.update(props)
    return {"event": "Airline Review", "properties": properties}


def person(i: int = 0, token: str = PROJECT_TOKEN) -> dict[str, Any]:
    """A valid people record."""
    return {"$token": token, "$distinct_id": f"user-{i}", "$set": {"name": f"Reviewer {i}"}}
