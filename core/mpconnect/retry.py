"""Deprecated alias of :mod:`mpconnect.transport.retry`, kept for one release.

Import from mpconnect instead: ``from mpconnect import call_with_retries``.
"""

import sys
import warnings

from mpconnect.transport import retry as _moved

warnings.warn(
    "mpconnect.retry is deprecated and will be removed in the next release; "
    "import from mpconnect instead: `from mpconnect import call_with_retries`.",
    DeprecationWarning,
    stacklevel=2,
)
# The old name is the same module object, so patches through either path reach the code.
sys.modules[__name__] = _moved
