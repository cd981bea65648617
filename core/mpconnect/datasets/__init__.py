"""Deprecated package: the local Mixpanel server moved to :mod:`mpconnect.emulator`.

Only :mod:`mpconnect.datasets.server` is kept (for one release), since the README named it.
"""
