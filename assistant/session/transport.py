"""The seam between a session and its client: a message pipe with a close code.

A websocket (``server.app.WebSocketTransport``), an in-process pipe
(``pipe``) for the desktop app and the tests, or a wrapper that redeems a
token first: the session uses nothing else of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from assistant.errors import AssistantError

# Takes one whole client message straight off the socket: True when it did (``recv`` never sees it).
MessageSink = Callable[[bytes], bool]


class TransportClosed(AssistantError):
    """The peer went away; there is nobody left to send a close frame to."""


class Transport(Protocol):
    """A message pipe to one client: a websocket, or an in-process pair."""

    peer: str

    async def recv(self) -> str | bytes:
        """The next client frame; ``TransportClosed`` when the client is gone."""
        ...

    async def send(self, data: bytes) -> None:
        """Send one server frame; ``TransportClosed`` when the client is gone."""
        ...

    def send_now(self, data: bytes) -> bool:
        """Send one server frame if that needs no waiting; False when nothing was sent (then ``send`` it)."""
        ...

    def push_messages(self, sink: MessageSink | None) -> bool:
        """Offer each whole client message to ``sink`` as it arrives, before ``recv`` would return it.

        A message is offered only when nothing is queued for ``recv`` before
        it; what ``sink`` declines (False) comes through ``recv``, in order.
        None stops the offers. False where this transport cannot push: then
        every message comes through ``recv``.
        """
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close with a code and a reason the client can act on."""
        ...
