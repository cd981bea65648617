"""The built-in ``demo`` connector: synthetic airline reviews, no account needed.

Modelled on the Datasets API document's example (Skytrax airline reviews): reviewers are
people profiles, each review an ``Airline Review`` event. The data set is deterministic
for a given ``seed`` and ``events`` count, so a test knows exactly what a run loads.
"""

from __future__ import annotations

from collections.abc import Callable

import mpconnect
from mpconnect_demo.connector import DemoConnector

__all__ = ["DemoConnector"]


@mpconnect.hookimpl
def register_connectors(register: Callable[[type[mpconnect.Connector]], None]) -> None:
    """Register the ``demo`` connector."""
    register(DemoConnector)
