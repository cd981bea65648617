"""The Mixpanel project the local ingestion endpoints stand in for, and its credentials."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field

from mpconnect.emulator.ingestion_answers import IngestionRefused, unauthorized


@dataclass
class IngestionProject:
    """The Mixpanel project the local endpoints stand in for.

    :param project_id: the project id service accounts name with ``project_id``.
    :param token: the project token events and profile updates must carry; ``None``
        accepts any token.
    :param service_accounts: service account user names and their secrets.
    :param api_secret: the (legacy) project secret, accepted as Basic user name.

    A project with no token, no service account and no secret accepts any credentials.
    """

    project_id: str = "1"
    token: str | None = None
    service_accounts: Mapping[str, str] = field(default_factory=dict)
    api_secret: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        accounts = ", ".join(sorted(self.service_accounts))
        return f"IngestionProject(project_id={self.project_id!r}, service_accounts=[{accounts}])"

    @property
    def dataset_id(self) -> str:
        """The store dataset that holds what the endpoints accepted."""
        return f"PROJECT{self.project_id}"

    @property
    def is_open(self) -> bool:
        """True when no credential is configured, so any is accepted."""
        return not (self.token or self.service_accounts or self.api_secret)

    def authenticate(self, authorization: str, project_id: str | None) -> str:
        """Check Basic credentials as ``/import`` does; return how, or refuse with 401.

        :param authorization: the ``Authorization`` header ("" when there is none).
        :param project_id: the ``project_id`` query parameter, if given.
        :returns: ``"service account"``, ``"project token"``, ``"project secret"`` or,
            for an open project, ``"any credentials"``.
        """
        user = password = None
        if authorization.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user = None
        if not user:
            raise IngestionRefused(401, unauthorized("missing Basic credentials"))
        if self.is_open:
            return "any credentials"
        if project_id is not None:
            if project_id != self.project_id:
                raise IngestionRefused(
                    401, unauthorized(f"project {project_id} is not this project")
                )
            if self.service_accounts.get(user) != password or password == "":
                raise IngestionRefused(401, unauthorized("Invalid credentials"))
            return "service account"
        if user == self.token and not password:
            return "project token"
        if self.api_secret is not None and user == self.api_secret:
            return "project secret"
        raise IngestionRefused(401, unauthorized("Invalid credentials"))
