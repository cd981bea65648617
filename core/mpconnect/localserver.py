"""Deprecated alias of :mod:`mpconnect.emulator.background`, kept for one release.

Import from mpconnect instead: ``from mpconnect import LocalServer, ServedSource, ServeOptions``.
"""

import sys
import warnings

from mpconnect.emulator import background as _moved

warnings.warn(
    "mpconnect.localserver is deprecated and will be removed in the next release; "
    "import from mpconnect instead: `from mpconnect import LocalServer`.",
    DeprecationWarning,
    stacklevel=2,
)
# The old name is the same module object, so patches through either path reach the code.
sys.modules[__name__] = _moved
