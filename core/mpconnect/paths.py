"""Where mpconnect keeps its files: ``$MPCONNECT_HOME``, else the user data directory."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

HOME_ENV = "MPCONNECT_HOME"


def home_dir() -> Path:
    """Return (and create) mpconnect's data directory."""
    raw = os.environ.get(HOME_ENV)
    path = Path(raw).expanduser() if raw else Path(platformdirs.user_data_dir("mpconnect"))
    path.mkdir(parents=True, exist_ok=True)
    return path
