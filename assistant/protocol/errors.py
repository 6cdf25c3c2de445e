"""The one error type that invalid Live input raises.

A Live connection reports every problem by closing the socket with a code and
a reason (an ``{"error": ...}`` frame would crash the google-genai SDK), so the
error carries exactly those two things and nothing else needs translating at
the edge.
"""

from __future__ import annotations

import secrets
from enum import IntEnum

from assistant.errors import AssistantError


class CloseCode(IntEnum):
    """WebSocket close codes that the Live protocol uses."""

    NORMAL = 1000
    GOING_AWAY = 1001
    INVALID_ARGUMENT = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013


# RFC 6455 limits a close frame's reason to 123 bytes of UTF-8.
MAX_CLOSE_REASON_BYTES = 123


def fit_close_reason(reason: str, limit: int = MAX_CLOSE_REASON_BYTES) -> str:
    """Shorten ``reason`` to ``limit`` bytes (what a close frame can carry), on a character boundary."""
    encoded = reason.encode("utf-8")
    if len(encoded) <= limit:
        return reason
    return encoded[: limit - 3].decode("utf-8", "ignore") + "..."


def new_error_id() -> str:
    """A short id that ties a close reason to the log line holding the details (``e-3fa2c1``)."""
    return f"e-{secrets.token_hex(3)}"


def with_error_id(reason: str, error_id: str) -> str:
    """``reason`` with ``error_id`` appended, shortened so the id always fits in a close frame.

    The client reads what went wrong in the project's words; what a library
    said (a JSON parser's position, an upstream address, a file path) stays
    in the server log, under the same id.
    """
    suffix = f" (error {error_id}; see the server log)"
    return fit_close_reason(reason, MAX_CLOSE_REASON_BYTES - len(suffix.encode("utf-8"))) + suffix


class ProtocolError(AssistantError):
    """Input that breaks the Live protocol; the connection closes with ``code``.

    ``reason`` names the offending field and says what to send instead, because
    it is all a client developer sees. ``detail`` is what a library said about
    the input, for the log only: with one, the reason carries an error id
    that the session's log line repeats next to the detail.
    """

    def __init__(self, reason: str, code: CloseCode = CloseCode.INVALID_ARGUMENT, detail: str | None = None) -> None:
        self.error_id = new_error_id() if detail is not None else None
        self.reason = with_error_id(reason, self.error_id) if self.error_id is not None else reason
        super().__init__(self.reason)
        self.code = code
        self.detail = detail

    def __repr__(self) -> str:
        return f"ProtocolError({self.code.value}, {self.reason!r})"
