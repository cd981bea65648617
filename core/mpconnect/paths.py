"""Where mpconnect keeps its files: ``$MPCONNECT_HOME``, else the user data directory."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from mpconnect.disk import file_problem, private_dir

HOME_ENV = "MPCONNECT_HOME"


def home_dir() -> Path:
    """Return (and create, readable by its owner only) mpconnect's data directory."""
    raw = os.environ.get(HOME_ENV)
    path = Path(raw).expanduser() if raw else Path(platformdirs.user_data_dir("mpconnect"))
    try:
        return private_dir(path)
    except OSError as exc:
        raise file_problem(exc, path, f"mpconnect's data directory (${HOME_ENV})") from exc
