"""The local Datasets API server in a background thread, for tests and plugin authors.

The server is the embedded store behind HTTPS, faithful to
``reference/mixpanel-datasets-api.txt``. Its parts, one job each:

- :mod:`~mpconnect.emulator.app`: the aiohttp applications (:func:`make_app`);
- :mod:`~mpconnect.emulator.handlers`: the endpoints;
- :mod:`~mpconnect.emulator.auth`, :mod:`~mpconnect.emulator.forms`,
  :mod:`~mpconnect.emulator.checks`: credentials, parameters, and checks of ids, state and
  records;
- :mod:`~mpconnect.emulator.faults` and :mod:`~mpconnect.emulator.middleware`: seeded fault
  injection (5xx, 429 with ``Retry-After``, added latency, connections closed without a
  response before or after the request took effect) and the JSON errors;
- :mod:`~mpconnect.emulator.ingestion_api`: Mixpanel's ``/import`` and ``/engage``.

:class:`LocalDatasetsServer` runs the application over HTTPS with a local certificate
authority; ``mpconnect serve`` runs it in the foreground. The names above are importable
from here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mpconnect.emulator.app import HTTPS_REQUIRED, make_app, make_https_required_app
from mpconnect.emulator.background import HEADER_TIMEOUT, BackgroundServer, LocalCA
from mpconnect.emulator.checks import (
    check_dataset_id,
    check_events,
    check_people,
    decode_records,
)
from mpconnect.emulator.faults import FaultInjector, Faults
from mpconnect.emulator.forms import parse_form
from mpconnect.emulator.ingestion_api import (
    INGESTION_ENDPOINTS,
    IngestionEndpoints,
    IngestionProject,
)
from mpconnect.emulator.options import MAX_BODY_BYTES, MAX_RECORDS, ServerOptions
from mpconnect.emulator.project_limit import ProjectLimit
from mpconnect.emulator.responses import Refused
from mpconnect.store.datasets import DatasetStore

__all__ = [
    "HTTPS_REQUIRED",
    "MAX_RECORDS",
    "FaultInjector",
    "Faults",
    "LocalDatasetsServer",
    "ProjectLimit",
    "Refused",
    "ServerOptions",
    "check_dataset_id",
    "check_events",
    "check_people",
    "decode_records",
    "make_app",
    "make_https_required_app",
    "parse_form",
]


class LocalDatasetsServer:
    """The local Datasets API over HTTPS, in a background thread, for tests.

    ::

        with LocalDatasetsServer(tmp_path, datasets=["DEMO"]) as server:
            client = DatasetsClient(server.url, secret=server.project_secret,
                                    project_token=server.project_token,
                                    ca_bundle=server.ca_path)
            server.set_faults(fail_rate=0.3)

    :param directory: where the store (``datasets.sqlite3``) and the CA (``ca/ca.pem``) go.
    :param datasets: datasets that exist (others are unknown, as in the real service).
    :param live_delay: seconds from readable to live.
    :param http: also listen on plain HTTP, answering the HTTPS-required error
        (:attr:`http_url`).
    :param seed: seeds fault injection; the other keywords are :class:`Faults` fields.
    :param ingestion: the project ``/import`` and ``/engage`` stand in for (see
        :attr:`ingestion`).
    :param header_timeout: close a connection whose request headers have not arrived
        within this many seconds (:data:`mpconnect.emulator.background.HEADER_TIMEOUT`).
    :param max_body_bytes: the largest request body accepted; a larger one is answered
        413 ``{"error": "request exceeds max limit of N bytes"}``.
    :param project_limit: the project's rolling-window import budget (429 with
        ``Retry-After`` past it; default: none). Its counters are :attr:`project_limit`.
    """

    def __init__(
        self,
        directory: Path,
        *,
        datasets: tuple[str, ...] | list[str] = ("DEMO",),
        project_token: str = "local-project-token",
        project_secret: str = "local-project-secret",
        dataset_secrets: dict[str, str] | None = None,
        live_delay: float = 0.0,
        http: bool = False,
        seed: int = 0,
        store_path: Path | None = None,
        ingestion: IngestionProject | None = None,
        header_timeout: float = HEADER_TIMEOUT,
        max_body_bytes: int = MAX_BODY_BYTES,
        project_limit: ProjectLimit | None = None,
        **faults: Any,
    ) -> None:
        self.directory = Path(directory)
        self.project_token = project_token
        self.project_secret = project_secret
        self.options = ServerOptions(
            project_token,
            project_secret,
            dict(dataset_secrets or {}),
            max_body_bytes=max_body_bytes,
        )
        self.store = DatasetStore(
            store_path or self.directory / "datasets.sqlite3", live_delay=live_delay
        )
        for dataset_id in datasets:
            check_dataset_id(dataset_id)
            self.store.ensure_dataset(dataset_id)
        self.injector = FaultInjector(Faults(**faults), seed)
        #: The project's import budget and its counters (accepted, refused per second).
        self.project_limit = project_limit or ProjectLimit()
        self._ca = LocalCA(self.directory / "ca")
        self.ca_path = self._ca.ca_path
        self._server = BackgroundServer(
            make_app(
                self.store,
                self.options,
                self.injector,
                ingestion=ingestion,
                project_limit=self.project_limit,
            ),
            ssl_context=self._ca.server_context(),
            header_timeout=header_timeout,
        )
        self._http_server: BackgroundServer | None = None
        self._want_http = http
        self._header_timeout = header_timeout

    def __repr__(self) -> str:
        return f"<LocalDatasetsServer {self.url}>"

    @property
    def url(self) -> str:
        """The HTTPS base URL, such as ``https://127.0.0.1:54321``."""
        return self._server.url

    @property
    def http_url(self) -> str:
        """The plain-HTTP URL that refuses every request (needs ``http=True``)."""
        if self._http_server is None:
            raise RuntimeError("start the server with http=True to get a plain-HTTP listener")
        return self._http_server.url

    def start(self) -> LocalDatasetsServer:
        """Start serving; returns once the ports are bound."""
        self._server.start()
        if self._want_http:
            self._http_server = BackgroundServer(
                make_https_required_app(self.url), header_timeout=self._header_timeout
            ).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._http_server is not None:
            self._http_server.stop()
        self._server.stop()
        self.store.close()

    def __enter__(self) -> LocalDatasetsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def ingestion(self) -> IngestionEndpoints:
        """The ``/import`` and ``/engage`` handlers: their project, faults and counters."""
        return self._server.app[INGESTION_ENDPOINTS]

    # faults and counters ---------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        """The faults in force."""
        return self.injector.faults

    def set_faults(self, **changes: Any) -> Faults:
        """Change fault settings while running (``fail_rate=1.0``, ``rate_limit=5``...)."""
        return self.injector.set(**changes)

    def reset_faults(self) -> None:
        """Turn every fault off."""
        self.injector.reset()

    def set_live_delay(self, seconds: float) -> None:
        """Change the time from readable to live."""
        self.store.live_delay = seconds

    def request_counts(self) -> dict[str, int]:
        """Requests received, keyed ``"METHOD /path"``."""
        return self.injector.request_counts()

    def requests_to(self, path: str, method: str | None = None) -> int:
        """How many requests ``path`` received (of ``method``, if given)."""
        return sum(
            count
            for key, count in self.request_counts().items()
            if key.split(" ", 1)[1] == path and (method is None or key.split(" ", 1)[0] == method)
        )

    def faults_injected(self) -> dict[str, int]:
        """Faults injected so far, by kind (``drop``, ``429``, ``5xx``, ``lost_ack``...)."""
        return self.injector.faults_injected()

    def connections(self) -> int:
        """How many client connections sent requests (connection reuse shows here)."""
        return self.injector.connections()

    def reset_counts(self) -> None:
        """Zero the request, fault and connection counters."""
        self.injector.reset_counts()
