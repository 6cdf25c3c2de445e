"""Logging set-up and the per-session logger.

Every line a session writes carries its id, peer and backend, so one
conversation can be followed through a busy server's log with grep. With
``--log-format json`` each line is one JSON object (python-json-logger), and
the session's id, peer and backend are fields of their own, for log
collectors (Loki, Elasticsearch, Cloud Logging) to index.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from pythonjsonlogger.json import JsonFormatter

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"
LOG_FORMATS = ("text", "json")


def configure_logging(level: str = "info", log_format: str = "text") -> None:
    """Send the project's logs to stderr at ``level`` (debug, info, warning, error), as text or JSON lines."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}; use debug, info, warning or error")
    if log_format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r}; use text or json")
    logging.basicConfig(level=numeric, format=LOG_FORMAT, force=True)
    if log_format == "json":
        formatter = JsonFormatter(
            JSON_FIELDS, rename_fields={"asctime": "time", "levelname": "level", "name": "logger"}
        )
        for handler in logging.getLogger().handlers:
            handler.setFormatter(formatter)
    # The websockets library logs every failed handshake at INFO with a traceback.
    logging.getLogger("websockets").setLevel(max(numeric, logging.WARNING))


class SessionLogger(logging.LoggerAdapter[logging.Logger]):
    """Prefixes each message with ``[session peer backend]``."""

    def __init__(self, logger: logging.Logger, session_id: str, peer: str, backend: str) -> None:
        super().__init__(logger, {"session": session_id, "peer": peer, "backend": backend})

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        extra = self.extra or {}
        kwargs["extra"] = {**extra, **kwargs.get("extra", {})}  # fields of their own in JSON lines
        return f"[{extra['session']} {extra['peer']} {extra['backend']}] {msg}", kwargs
