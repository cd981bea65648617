"""Registers ``mpconnect serve mixpanel`` through the hook other local servers use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import mpconnect
from mpconnect.emulator.background import LocalServer


class MixpanelLocalServer(LocalServer):
    """The local Datasets API (and ``/import``, ``/engage``): ``mpconnect serve mixpanel``.

    It has options of its own (datasets, secrets, faults), so it brings its own command.
    """

    name: ClassVar[str] = "mixpanel"
    summary: ClassVar[str] = "the local Mixpanel Datasets and ingestion API"

    @classmethod
    def command(cls) -> Any:
        """The ``mixpanel`` command of :mod:`mpconnect.cli.serve`."""
        from mpconnect.cli.serve import mixpanel

        return mixpanel


@mpconnect.hookimpl
def register_local_servers(register: Callable[[type[LocalServer]], None]) -> None:
    """Register the local Mixpanel server."""
    register(MixpanelLocalServer)
