"""The Salesforce connector for mpconnect: Contacts, Leads, Opportunities, Cases and Tasks
(and any object by configuration) as Mixpanel events and people profiles.

Registered through mpconnect's public plugin API, exactly as a third-party plugin would
be. Importing this package never imports ``simple_salesforce``: without the
``salesforce`` extra the connector is listed as unavailable, with the install command.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import mpconnect

if TYPE_CHECKING:
    from mpconnect import LocalServer
    from mpconnect_salesforce.connector import SalesforceConnector

__all__ = ["SalesforceConnector", "register_connectors", "register_local_servers"]

#: The connector as ``connectors list`` shows it; the class is imported when a run needs it.
CONNECTOR = mpconnect.ConnectorRef(
    name="salesforce",
    target="mpconnect_salesforce.connector:SalesforceConnector",
    description=(
        "Salesforce: Contacts and Leads as people; lead, opportunity, case and task events; "
        "any object by configuration"
    ),
    requires=("simple_salesforce",),
    install_hint='pip install "mpconnect[salesforce]"',
    incremental=True,
)


@mpconnect.hookimpl
def register_connectors(register: Callable[[mpconnect.ConnectorRef], None]) -> None:
    """Register the ``salesforce`` connector."""
    register(CONNECTOR)


@mpconnect.hookimpl
def register_local_servers(register: Callable[[type[LocalServer]], None]) -> None:
    """Register ``mpconnect serve salesforce``: the local Salesforce API."""
    from mpconnect_salesforce.localserver import SalesforceLocalServer

    register(SalesforceLocalServer)


def __getattr__(name: str) -> Any:
    """The connector classes, imported on first use (the CLI starts without them)."""
    if name == "SalesforceConnector":
        from mpconnect_salesforce.connector import SalesforceConnector

        return SalesforceConnector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
