"""An in-process transport pair: a session and a client with no socket between.

The desktop app runs its session in-process by default; tests drive sessions
deterministically. Both ends speak the same encoded frames as a websocket, so
nothing above the transport knows the difference. Each direction is bounded,
so back-pressure behaves as it does on a socket.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from assistant.session.transport import MessageSink, TransportClosed

DEFAULT_PIPE_FRAMES = 64


@dataclass(frozen=True, slots=True)
class CloseFrame:
    """What ``close`` puts in the peer's inbox."""

    code: int
    reason: str


Frames = asyncio.Queue[str | bytes | CloseFrame]


class PipeClosed(TransportClosed):
    """The other end closed; ``code`` and ``reason`` are what it said."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed with {code}: {reason}")
        self.code = code
        self.reason = reason


class PipeEnd:
    """One end of a pipe; implements the session ``Transport`` protocol."""

    def __init__(self, peer: str, inbox: Frames, outbox: Frames) -> None:
        self.peer = peer
        self._inbox = inbox
        self._outbox = outbox
        self.closed: CloseFrame | None = None

    async def recv(self) -> str | bytes:
        if self.closed is not None:
            raise PipeClosed(self.closed.code, self.closed.reason)
        item = await self._inbox.get()
        if isinstance(item, CloseFrame):
            self.closed = item
            raise PipeClosed(item.code, item.reason)
        return item

    async def send(self, data: str | bytes) -> None:
        if self.closed is not None:
            raise PipeClosed(self.closed.code, self.closed.reason)
        await self._outbox.put(data)

    def send_now(self, data: str | bytes) -> bool:
        if self.closed is not None or self._outbox.full():
            return False
        self._outbox.put_nowait(data)
        return True

    def push_messages(self, sink: MessageSink | None) -> bool:
        return False  # in-process: a reader's hop costs no socket wake-up worth sparing

    async def close(self, code: int, reason: str) -> None:
        if self.closed is not None:
            return
        self.closed = CloseFrame(code, reason)
        # A peer that stopped reading must still learn that the pipe closed:
        # drop what it never read, as a socket's close would.
        while self._outbox.full():
            self._outbox.get_nowait()
        self._outbox.put_nowait(self.closed)


def pipe(maxsize: int = DEFAULT_PIPE_FRAMES, peer: str = "in-process") -> tuple[PipeEnd, PipeEnd]:
    """A connected pair: (server end for the ``Session``, client end)."""
    to_server: Frames = asyncio.Queue(maxsize)
    to_client: Frames = asyncio.Queue(maxsize)
    return PipeEnd(peer, to_server, to_client), PipeEnd("session", to_client, to_server)
