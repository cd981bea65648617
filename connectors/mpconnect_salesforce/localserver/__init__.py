"""The local Salesforce API as a product: ``mpconnect serve salesforce``.

:class:`SalesforceLocalServer` serves a seeded, consistent org (``--contacts N`` contacts
and accounts, leads, opportunities, cases and tasks in proportion) over HTTPS on
127.0.0.1, with a certificate from a local CA whose ``ca.pem`` it writes, and prints the
``[sources.crm]`` table that points the ``salesforce`` connector at it (the connector
speaks https only; ``ca_bundle`` trusts the local CA). The server itself is
:class:`~mpconnect_salesforce.localserver.api.SalesforceApi` (the one the connector's
tests use), its data :class:`~mpconnect_salesforce.localserver.org.Org`. Importing this
package does not import aiohttp; starting the server does.
"""

from __future__ import annotations

from typing import ClassVar

from mpconnect import LocalServer, ServedSource, ServeOptions

__all__ = ["SalesforceLocalServer", "org_sizes"]


def org_sizes(contacts: int) -> dict[str, int]:
    """The size of each object for an org of ``contacts`` contacts (60 gives the default)."""
    return {
        "accounts": max(1, contacts // 5),
        "contacts": contacts,
        "leads": contacts * 2 // 3,
        "opportunities": contacts // 2,
        "cases": contacts * 5 // 12,
        "tasks": contacts * 5 // 6,
        "demo_requests": contacts // 3,
        "members": contacts // 4,
    }


class SalesforceLocalServer(LocalServer):
    """``mpconnect serve salesforce``: a local Salesforce API over a seeded org."""

    name: ClassVar[str] = "salesforce"
    connector: ClassVar[str] = "salesforce"
    summary: ClassVar[str] = "a local Salesforce API"
    source_name: ClassVar[str] = "crm"
    dataset_id: ClassVar[str] = "SALESFORCE"
    size_option: ClassVar[str] = "contacts"
    size_help: ClassVar[str] = (
        "Contacts in the org; accounts, leads, opportunities, cases "
        "and tasks are sized in proportion."
    )
    default_size: ClassVar[int] = 60
    default_port: ClassVar[int] = 12112
    requires: ClassVar[tuple[str, ...]] = ("aiohttp", "trustme")
    install_hint: ClassVar[str | None] = 'pip install "mpconnect[salesforce,server]"'

    def start(self, options: ServeOptions) -> ServedSource:
        """Make the org from ``options.seed`` and serve it over HTTPS on ``options.port``."""
        from mpconnect import BackgroundServer, LocalCA

        from .api import PASSWORD, SECURITY_TOKEN, USERNAME, ApiState, SalesforceApi
        from .org import Org

        ca = LocalCA(options.directory)
        org = Org(options.seed, **org_sizes(options.size))
        state = ApiState(org, bulk_polls=0)
        server = BackgroundServer(
            SalesforceApi(state).app,
            host=options.host,
            port=options.port,
            ssl_context=ca.server_context(),
        ).start()
        plural = {
            "Account": "accounts",
            "Contact": "contacts",
            "Lead": "leads",
            "Opportunity": "opportunities",
            "Case": "cases",
            "Task": "tasks",
        }
        contents = ", ".join(f"{org.sizes[name]} {words}" for name, words in plural.items())
        return ServedSource(
            url=server.url,
            settings={
                "username": USERNAME,
                "password": "${SF_PASSWORD}",
                "security_token": "${SF_TOKEN}",
                "login_url": server.url,
                "ca_bundle": str(ca.ca_path.resolve()),
            },
            environment={"SF_PASSWORD": PASSWORD, "SF_TOKEN": SECURITY_TOKEN},
            contents=contents,
            stop=server.stop,
            # The seeded org holds a few rows with no one to attribute them to, on purpose,
            # so that a first run shows the quarantine at work without failing.
            source_options={"max_quarantined": 0.1},
        )
