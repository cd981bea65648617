"""The ``datasets`` sink: dataset versions over the Mixpanel Datasets API (HTTPS).

Configured in ``[mixpanel]``::

    sink = "datasets"
    api_url = "https://api-beta.mixpanel.com"   # the default
    project_token = "..."
    secret = "${MIXPANEL_SECRET}"               # project secret or dataset secret
    ca_bundle = "/path/ca.pem"                  # optional: a local server's CA
    allow_http_loopback = false                 # optional: http:// to 127.0.0.1 only
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mpconnect.errors import ApiError, ConfigError
from mpconnect.mixpanel.datasets import DEFAULT_API_URL, MAX_IMPORT_RECORDS, DatasetsClient
from mpconnect.sink import ImportResult, RecordKind, Sink, VersionInfo
from mpconnect.transport.http import is_loopback


def _setting(settings: Any, name: str) -> Any:
    value = getattr(settings, name, None)
    if value is None:
        value = (getattr(settings, "model_extra", None) or {}).get(name)
    return value


class DatasetsSink(Sink):
    """Creates, imports, publishes and prunes versions through the Datasets API."""

    name = "datasets"
    #: The Datasets API says every record needs a distinct_id and documents no empty one.
    accepts_unattributed_events = False
    max_batch_records = MAX_IMPORT_RECORDS
    project_rate_limited = True
    extra_settings = frozenset({"allow_http_loopback"})

    def __init__(self, settings: Any, home: Path) -> None:
        super().__init__(settings, home)
        token = _setting(settings, "project_token")
        secret = _setting(settings, "secret")
        if not token:
            raise ConfigError(
                "mixpanel.project_token: the datasets sink needs the project token; add "
                'project_token = "YOUR_PROJECT_TOKEN" to [mixpanel] (Project settings in '
                "Mixpanel)"
            )
        if secret is None:
            raise ConfigError(
                "mixpanel.secret: the datasets sink needs the project secret or the dataset "
                'secret; add secret = "${MIXPANEL_SECRET}" to [mixpanel] and export '
                "MIXPANEL_SECRET"
            )
        secret_value = (
            secret.get_secret_value() if hasattr(secret, "get_secret_value") else str(secret)
        )
        if not secret_value:
            raise ConfigError(
                "mixpanel.secret: is empty; export the variable it references "
                "with the project secret or the dataset secret"
            )
        ca_bundle = _setting(settings, "ca_bundle")
        allow_http = _setting(settings, "allow_http_loopback") or False
        if not isinstance(allow_http, bool):
            raise ConfigError("mixpanel.allow_http_loopback: must be true or false")
        self.client = DatasetsClient(
            _setting(settings, "api_url") or DEFAULT_API_URL,
            secret=secret_value,
            project_token=str(token),
            ca_bundle=Path(ca_bundle).expanduser() if ca_bundle else None,
            timeout=float(_setting(settings, "timeout") or 60.0),
            allow_http_loopback=allow_http,
        )

    def describe(self) -> str:
        """Name the API URL (never the secret)."""
        return f"Datasets API at {self.client.api_url}"

    def create_version(self, dataset_id: str) -> VersionInfo:
        """Create a version; an unknown dataset is reported with how to create it."""
        try:
            return self.client.create_version(dataset_id)
        except ApiError as exc:
            if exc.status == 404:
                raise ApiError(
                    404, f"{exc.server_message}; {self._unknown_dataset_advice(dataset_id)}"
                ) from exc
            raise

    def _unknown_dataset_advice(self, dataset_id: str) -> str:
        """What to do about a dataset the server does not know, for the server it is."""
        if is_loopback(urlsplit(self.client.api_url).hostname):
            return (
                f"the local server at {self.client.api_url} has no dataset {dataset_id}: "
                f"start it with --dataset {dataset_id} (mpconnect serve mixpanel "
                f"--dataset {dataset_id}), or set the source's dataset_id to one it has"
            )
        return (
            f"check the source's dataset_id: {dataset_id} must be a dataset of this "
            "Mixpanel project; create it in Mixpanel first (Project settings, Data "
            "connector, Add a dataset)"
        )

    def list_versions(self, dataset_id: str) -> list[VersionInfo]:
        """Return the versions, newest first."""
        found = self.client.list_versions(dataset_id)
        return sorted(found, key=lambda v: (v.created_at, _numeric(v.version_id)), reverse=True)

    def import_batch(
        self, kind: RecordKind, dataset_id: str, version_id: str, payload: bytes, count: int
    ) -> ImportResult:
        """Import one batch (a JSON array of ``count`` records) with one request."""
        if count > self.max_batch_records:
            raise ValueError(
                f"a batch holds {count} records; the Datasets API takes at most "
                f"{self.max_batch_records}"
            )
        self.client.import_records(kind, dataset_id, version_id, payload)
        return ImportResult(imported=count)

    def publish(self, dataset_id: str, version_id: str) -> None:
        """Make the version readable and no longer writable (both fields sent)."""
        self.client.update_state(dataset_id, version_id, readable=True, writable=False)

    def delete_version(self, dataset_id: str, version_id: str) -> None:
        """Delete a version."""
        self.client.delete_version(dataset_id, version_id)

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()


def _numeric(version_id: str) -> int:
    return int(version_id) if version_id.isdigit() else 0
