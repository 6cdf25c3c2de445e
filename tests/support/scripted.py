"""A scripted backend: the test double behind the session and server tests.

Each session runs a script, a coroutine that waits for the client events it
expects (failing the test when something else arrives) and emits the server
messages it wants the client to see. It lives in tests/ only: the product
never ships a fake backend.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from assistant.protocol import AudioChunk, ClientEvent, ServerEvent, ServerMessage, server_events
from assistant.session import Backend, BackendError, BackendStream, SessionRequest

E = TypeVar("E")
Script = Callable[["ScriptedSession"], Awaitable[None]]
END = object()
OUT_QUEUE_SIZE = 256


class ScriptedSession(BackendStream):
    """One conversation driven by a script; records everything it received."""

    def __init__(self, request: SessionRequest) -> None:
        self.request = request
        self.received: list[ClientEvent] = []
        self._events: asyncio.Queue[ClientEvent] = asyncio.Queue()
        self._out: asyncio.Queue[object] = asyncio.Queue(OUT_QUEUE_SIZE)
        self.closed = asyncio.Event()
        self.state: dict[str, object] | None = None

    # -- BackendStream ------------------------------------------------------

    async def send(self, event: ClientEvent) -> None:
        self.received.append(event)
        await self._events.put(event)

    async def receive(self) -> AsyncIterator[ServerEvent]:
        """What the script emitted: events, and wire messages as the events they hold."""
        while True:
            item = await self._out.get()
            if item is END:
                return
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, ServerMessage):
                for event in server_events(item):
                    yield event
            else:
                yield item  # type: ignore[misc]

    def resumption_state(self) -> dict[str, object] | None:
        return self.state

    async def close(self) -> None:
        self.closed.set()

    # -- for scripts ---------------------------------------------------------

    async def expect(self, kind: type[E], timeout: float = 10.0, skip_audio: bool = True) -> E:
        """The next event, which must be a ``kind``; audio is skipped unless asked for."""
        while True:
            event = await asyncio.wait_for(self._events.get(), timeout)
            if skip_audio and isinstance(event, AudioChunk) and kind is not AudioChunk:
                continue
            if not isinstance(event, kind):
                raise AssertionError(f"expected {kind.__name__}, backend received {event!r}")
            return event

    async def audio_seconds(self, seconds: float, timeout: float = 10.0) -> bytes:
        """Collect at least ``seconds`` of input audio (16 kHz)."""
        pcm = b""
        while len(pcm) < seconds * 32_000:
            pcm += (await self.expect(AudioChunk, timeout)).pcm
        return pcm

    def emit(self, *messages: ServerMessage | ServerEvent) -> None:
        """Queue a burst of messages (at most ``OUT_QUEUE_SIZE`` pending)."""
        for message in messages:
            self._out.put_nowait(message)

    async def stream(self, message: ServerMessage | ServerEvent) -> None:
        """Queue one message, waiting while the session is not taking them."""
        await self._out.put(message)

    def fail(self, error: BackendError) -> None:
        self._out.put_nowait(error)

    def end(self) -> None:
        self._out.put_nowait(END)


class ScriptedBackend(Backend):
    """Opens a ``ScriptedSession`` per connection and runs ``script`` on it."""

    name = "scripted"

    def __init__(
        self,
        script: Script,
        open_error: BackendError | None = None,
        stream: Callable[[SessionRequest], ScriptedSession] = ScriptedSession,
    ) -> None:
        self.script = script
        self.open_error = open_error
        self.stream = stream
        self.sessions: list[ScriptedSession] = []
        self.script_errors: list[BaseException] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def open(self, request: SessionRequest) -> BackendStream:
        if self.open_error is not None:
            raise self.open_error
        session = self.stream(request)
        self.sessions.append(session)
        task = asyncio.create_task(self._run(session))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return session

    async def _run(self, session: ScriptedSession) -> None:
        try:
            await self.script(session)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # surfaced by check(), so a failing script fails its test
            self.script_errors.append(exc)
            session.fail(BackendError(f"script failed: {exc!r}"))

    def check(self) -> None:
        """Raise the first script failure, if any."""
        if self.script_errors:
            raise self.script_errors[0]

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def idle(session: ScriptedSession) -> None:
    """A script that accepts anything and says nothing until the session closes."""
    await session.closed.wait()
