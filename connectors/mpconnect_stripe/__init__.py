"""mpconnect's Stripe connector, registered through the public plugin API.

Importable without the ``stripe`` library: it is imported only when a run starts, and
without it the connector is listed as unavailable with ``pip install "mpconnect[stripe]"``.
"""

from __future__ import annotations

from collections.abc import Callable

import mpconnect
from mpconnect.localserver import LocalServer
from mpconnect_stripe.connector import StripeConnector
from mpconnect_stripe.settings import StripeSettings

__all__ = ["StripeConnector", "StripeSettings", "register_connectors", "register_local_servers"]


@mpconnect.hookimpl
def register_connectors(register: Callable[[type[mpconnect.Connector]], None]) -> None:
    """Register the ``stripe`` connector."""
    register(StripeConnector)


@mpconnect.hookimpl
def register_local_servers(register: Callable[[type[LocalServer]], None]) -> None:
    """Register ``mpconnect serve stripe``: the local Stripe API."""
    from mpconnect_stripe.localserver import StripeLocalServer

    register(StripeLocalServer)
