"""An in-process stand-in for the google-genai client, for the Gemini backend's timing rules on virtual time.

``FakeGemini`` (``tests.support.fake_gemini``) is a real TLS websocket
server, faithful to the wire but bound to the real clock: a socket's
replies race virtual timers. The goAway deadline and the reconnect backoff
are rules about time, not about the wire, so their tests open the backend
on this client instead: ``aio.live.connect`` yields a session whose
websocket is a queue the test fills with Gemini's frames (``say``), and
each connection attempt is recorded with the loop's time (virtual in those
tests) and the config it carried.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from google.genai import types

from assistant.protocol import ServerMessage, encode_message


class MemorySocket:
    """The websocket under a session: what the test queued comes out of ``recv``; what is sent is kept."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        self.sent: list[Any] = []

    async def recv(self, decode: bool = False) -> bytes:
        item = await self.inbox.get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def send(self, data: Any) -> None:
        self.sent.append(data)

    async def close(self) -> None:
        return None


class MemorySession:
    """What the backend calls on the SDK's session: each call is recorded as (method, arguments)."""

    def __init__(self, socket: MemorySocket) -> None:
        self._ws = socket
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def send_realtime_input(self, **kwargs: Any) -> None:
        self.calls.append(("send_realtime_input", kwargs))

    async def send_client_content(self, **kwargs: Any) -> None:
        self.calls.append(("send_client_content", kwargs))

    async def send_tool_response(self, **kwargs: Any) -> None:
        self.calls.append(("send_tool_response", kwargs))

    async def send_context_update(self, **kwargs: Any) -> None:
        self.calls.append(("send_context_update", kwargs))

    def texts(self) -> list[str]:
        """The typed text the backend sent on this connection, in order."""
        return [kwargs["text"] for method, kwargs in self.calls if method == "send_realtime_input" and "text" in kwargs]


@dataclass
class MemoryConnection:
    """One accepted connection: when it opened (loop time), its config, its session."""

    opened_at: float
    config: types.LiveConnectConfig
    session: MemorySession = field(default_factory=lambda: MemorySession(MemorySocket()))

    @property
    def presented_handle(self) -> str | None:
        resumption = self.config.session_resumption
        return resumption.handle if resumption is not None else None

    def say(self, *messages: ServerMessage) -> None:
        """Queue Gemini's frames for the backend to read."""
        for message in messages:
            self.session._ws.inbox.put_nowait(encode_message(message))

    def drop(self, error: BaseException) -> None:
        """End the connection with ``error`` as the websocket raises it (after what was queued)."""
        self.session._ws.inbox.put_nowait(error)


class MemoryLive:
    """``client.aio.live``: refuses the first ``refusals`` attempts with a network error, then accepts."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.attempts: list[float] = []  # loop time of every attempt, refused or not
        self.connections: list[MemoryConnection] = []
        self._opened = asyncio.Condition()

    @asynccontextmanager
    async def connect(self, *, model: str, config: types.LiveConnectConfig) -> AsyncIterator[MemorySession]:
        loop = asyncio.get_running_loop()
        self.attempts.append(loop.time())
        if len(self.attempts) <= self.refusals:
            raise OSError("connection refused")
        connection = MemoryConnection(loop.time(), config)
        async with self._opened:
            self.connections.append(connection)
            self._opened.notify_all()
        yield connection.session

    async def opened(self, count: int) -> MemoryConnection:
        """Wait until ``count`` connections were accepted; the last of them."""
        async with self._opened:
            await self._opened.wait_for(lambda: len(self.connections) >= count)
        return self.connections[count - 1]


class MemoryGemini:
    """The client: ``vertexai`` and ``aio.live``, all the backend uses of it."""

    vertexai = False

    def __init__(self, refusals: int = 0) -> None:
        self.live = MemoryLive(refusals)
        self.aio = self

    async def aclose(self) -> None:
        return None
