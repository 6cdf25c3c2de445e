"""The one error type that invalid Live input raises.

A Live connection reports every problem by closing the socket with a code and
a reason (an ``{"error": ...}`` frame would crash the google-genai SDK), so the
error carries exactly those two things and nothing else needs translating at
the edge.
"""

from __future__ import annotations

from enum import IntEnum


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


def fit_close_reason(reason: str) -> str:
    """Shorten ``reason`` to what a close frame can carry, on a character boundary."""
    encoded = reason.encode("utf-8")
    if len(encoded) <= MAX_CLOSE_REASON_BYTES:
        return reason
    return encoded[: MAX_CLOSE_REASON_BYTES - 3].decode("utf-8", "ignore") + "..."


class ProtocolError(Exception):
    """Input that breaks the Live protocol; the connection closes with ``code``.

    ``reason`` names the offending field and says what to send instead, because
    it is all a client developer sees.
    """

    def __init__(self, reason: str, code: CloseCode = CloseCode.INVALID_ARGUMENT) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code

    def __repr__(self) -> str:
        return f"ProtocolError({self.code.value}, {self.reason!r})"
