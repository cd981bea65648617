"""Deprecated alias of :mod:`mpconnect.transport.http`, kept for one release.

Import from mpconnect instead: ``from mpconnect import JsonHttpClient``.
"""

import sys
import warnings

from mpconnect.transport import http as _moved

warnings.warn(
    "mpconnect.http is deprecated and will be removed in the next release; "
    "import from mpconnect instead: `from mpconnect import JsonHttpClient`.",
    DeprecationWarning,
    stacklevel=2,
)
# The old name is the same module object, so patches through either path reach the code.
sys.modules[__name__] = _moved
