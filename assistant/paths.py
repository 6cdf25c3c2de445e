"""Where the assistant keeps the user's data (sessions, memory, knowledge).

``ASSISTANT_DATA_DIR`` overrides the platform's user data directory, so tests
and several installs can keep their data apart.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def data_dir() -> Path:
    """The user's data directory for this app, created on first use."""
    override = os.environ.get("ASSISTANT_DATA_DIR")
    path = Path(override).expanduser() if override else Path(platformdirs.user_data_dir("assistant"))
    path.mkdir(parents=True, exist_ok=True)
    return path
