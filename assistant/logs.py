"""Logging set-up and the per-session logger.

Every line a session writes carries its id, peer and backend, so one
conversation can be followed through a busy server's log with grep.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str = "info") -> None:
    """Send the project's logs to stderr at ``level`` (debug, info, warning, error)."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}; use debug, info, warning or error")
    logging.basicConfig(level=numeric, format=LOG_FORMAT, force=True)
    # The websockets library logs every failed handshake at INFO with a traceback.
    logging.getLogger("websockets").setLevel(max(numeric, logging.WARNING))


class SessionLogger(logging.LoggerAdapter[logging.Logger]):
    """Prefixes each message with ``[session peer backend]``."""

    def __init__(self, logger: logging.Logger, session_id: str, peer: str, backend: str) -> None:
        super().__init__(logger, {"session": session_id, "peer": peer, "backend": backend})

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        extra = self.extra or {}
        return f"[{extra['session']} {extra['peer']} {extra['backend']}] {msg}", kwargs
