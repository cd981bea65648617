"""The built-in ``demo`` connector: synthetic airline reviews, no account needed.

Modelled on the Datasets API document's example (Skytrax airline reviews): reviewers are
people profiles, each review an ``Airline Review`` event. The data set is deterministic
for a given ``seed`` and ``events`` count, so a test knows exactly what a run loads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import mpconnect

if TYPE_CHECKING:
    from mpconnect_demo.connector import DemoConnector

__all__ = ["DemoConnector"]

#: The connector as ``connectors list`` shows it; the class is imported when a run needs it.
CONNECTOR = mpconnect.ConnectorRef(
    name="demo",
    target="mpconnect_demo.connector:DemoConnector",
    description="synthetic airline reviews, no account needed",
    incremental=True,
)


@mpconnect.hookimpl
def register_connectors(register: Callable[[mpconnect.ConnectorRef], None]) -> None:
    """Register the ``demo`` connector."""
    register(CONNECTOR)


def __getattr__(name: str) -> Any:
    """The connector classes, imported on first use (the CLI starts without them)."""
    if name == "DemoConnector":
        from mpconnect_demo.connector import DemoConnector

        return DemoConnector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
