"""mpconnect's Stripe connector, registered through the public plugin API.

Importable without the ``stripe`` library: it is imported only when a run starts, and
without it the connector is listed as unavailable with ``pip install "mpconnect[stripe]"``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import mpconnect

if TYPE_CHECKING:
    from mpconnect import LocalServer
    from mpconnect_stripe.connector import StripeConnector
    from mpconnect_stripe.settings import StripeSettings

__all__ = ["StripeConnector", "StripeSettings", "register_connectors", "register_local_servers"]

#: The connector as ``connectors list`` shows it; the class is imported when a run needs it.
CONNECTOR = mpconnect.ConnectorRef(
    name="stripe",
    target="mpconnect_stripe.connector:StripeConnector",
    description="Stripe customers, charges, refunds, invoices, subscriptions and disputes",
    requires=("stripe",),
    install_hint='pip install "mpconnect[stripe]"',
    incremental=True,
)


@mpconnect.hookimpl
def register_connectors(register: Callable[[mpconnect.ConnectorRef], None]) -> None:
    """Register the ``stripe`` connector."""
    register(CONNECTOR)


@mpconnect.hookimpl
def register_local_servers(register: Callable[[type[LocalServer]], None]) -> None:
    """Register ``mpconnect serve stripe``: the local Stripe API."""
    from mpconnect_stripe.localserver import StripeLocalServer

    register(StripeLocalServer)


def __getattr__(name: str) -> Any:
    """The connector classes, imported on first use (the CLI starts without them)."""
    if name == "StripeConnector":
        from mpconnect_stripe.connector import StripeConnector

        return StripeConnector
    if name == "StripeSettings":
        from mpconnect_stripe.settings import StripeSettings

        return StripeSettings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
