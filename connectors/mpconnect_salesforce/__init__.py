"""The Salesforce connector for mpconnect: Contacts, Leads, Opportunities, Cases and Tasks
(and any object by configuration) as Mixpanel events and people profiles.

Registered through mpconnect's public plugin API, exactly as a third-party plugin would
be. Importing this package never imports ``simple_salesforce``: without the
``salesforce`` extra the connector is listed as unavailable, with the install command.
"""

from __future__ import annotations

from collections.abc import Callable

import mpconnect
from mpconnect.localserver import LocalServer
from mpconnect_salesforce.connector import SalesforceConnector

__all__ = ["SalesforceConnector", "register_connectors", "register_local_servers"]


@mpconnect.hookimpl
def register_connectors(register: Callable[[type[mpconnect.Connector]], None]) -> None:
    """Register the ``salesforce`` connector."""
    register(SalesforceConnector)


@mpconnect.hookimpl
def register_local_servers(register: Callable[[type[LocalServer]], None]) -> None:
    """Register ``mpconnect serve salesforce``: the local Salesforce API."""
    from mpconnect_salesforce.localserver import SalesforceLocalServer

    register(SalesforceLocalServer)
