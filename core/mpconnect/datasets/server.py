"""Deprecated alias of :mod:`mpconnect.emulator.server`, kept for one release.

use ``from mpconnect.emulator.server import LocalDatasetsServer``.
"""

import sys
import warnings

from mpconnect.emulator import server as _moved

warnings.warn(
    "mpconnect.datasets.server is deprecated and will be removed in the next release; "
    "use `from mpconnect.emulator.server import LocalDatasetsServer`.",
    DeprecationWarning,
    stacklevel=2,
)
# The old name is the same module object, so patches through either path reach the code.
sys.modules[__name__] = _moved
