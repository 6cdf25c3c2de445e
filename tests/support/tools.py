"""Helpers for tool tests: a manual clock, and a session whose scripted model calls tools.

The session is the real ``Session`` over an in-process pipe; only the model
is scripted. A script emits tool calls as Gemini would and collects the
tool responses the session sends back to it; the client side proves the
session is still alive afterwards by getting an answer to a text turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from assistant.protocol import (
    FunctionCall,
    FunctionResponse,
    ServerMessage,
    TextInput,
    ToolResponses,
)
from assistant.session import MemoryResumptionStore, ServerTools, Session
from assistant.session.pipe import pipe
from tests.support.pipe_client import PipeClient
from tests.support.scripted import Script, ScriptedBackend, ScriptedSession

SETUP = {"setup": {"model": "models/test"}}


class ManualClock:
    """A ``Clock`` that moves only when the test says: five-minute timers fire at once."""

    def __init__(self, start: datetime = datetime(2026, 11, 28, 15, 42, 7, tzinfo=UTC)) -> None:
        self.start = start
        self.elapsed = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed)

    async def sleep(self, seconds: float) -> None:
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.elapsed + seconds, wake))
        await wake

    @property
    def sleepers(self) -> int:
        return sum(1 for _, wake in self._sleepers if not wake.done())

    async def sleeping(self, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until ``count`` tasks sleep on this clock (advancing earlier would leave them behind)."""
        async with asyncio.timeout(timeout):
            while self.sleepers < count:
                await asyncio.sleep(0.001)

    async def advance(self, seconds: float) -> None:
        """Move time on and let every sleeper that is now due run."""
        self.elapsed += seconds
        due = [wake for deadline, wake in self._sleepers if deadline <= self.elapsed]
        self._sleepers = [(d, w) for d, w in self._sleepers if d > self.elapsed]
        for wake in due:
            if not wake.done():
                wake.set_result(None)
        for _ in range(5):
            await asyncio.sleep(0)


class Client(PipeClient):
    """The client end of the pipe, with helpers for tool tests."""

    async def heard(self, timeout: float = 10.0) -> str:
        """The model's next spoken words (output transcript)."""
        while True:
            message = await self.recv(timeout)
            content = message.server_content
            if content is not None and content.output_transcription is not None:
                return content.output_transcription.text or ""

    async def ask(self, text: str, timeout: float = 10.0) -> str:
        """Send a text turn and return the model's answer: proof the session still works."""
        await self.send({"realtimeInput": {"text": text}})
        return await self.heard(timeout)


async def answer_texts(s: ScriptedSession) -> None:
    """The scripted model's small talk: every text gets an echo and a finished turn."""
    while True:
        text = await s.expect(TextInput, timeout=60)
        s.emit(ServerMessage.output_transcript(f"echo: {text.text}"), ServerMessage.turn_done())


async def collect_responses(s: ScriptedSession, count: int, timeout: float = 30.0) -> list[FunctionResponse]:
    """The next ``count`` tool responses the session sends to the model."""
    responses: list[FunctionResponse] = []
    while len(responses) < count:
        responses.extend((await s.expect(ToolResponses, timeout=timeout)).responses)
    return responses


def calling(*calls: FunctionCall, into: list[FunctionResponse], count: int | None = None) -> Script:
    """A model that makes ``calls``, records ``count`` responses in ``into``, says "done", then chats."""

    async def script(s: ScriptedSession) -> None:
        s.emit(ServerMessage.calls(list(calls)))
        into.extend(await collect_responses(s, len(calls) if count is None else count))
        s.emit(ServerMessage.output_transcript("done"), ServerMessage.turn_done())
        await answer_texts(s)

    return script


@asynccontextmanager
async def scripted_connection(
    script: Script, setup: Mapping[str, object] = SETUP, **session_options: Any
) -> AsyncIterator[tuple[Client, Session, ScriptedBackend]]:
    """A real ``Session`` over an in-process pipe whose model follows ``script``, set up and running.

    On leaving, the client goes away as a phone losing its network does and
    the session must end by itself within 10 s; a failed script fails the test.
    """
    backend = ScriptedBackend(script)
    server_end, client_end = pipe()
    session = Session(server_end, backend, **session_options)
    task = asyncio.create_task(session.run())
    client = Client(client_end)
    await client.send(setup)
    assert (await client.recv()).setup_complete is not None
    try:
        yield client, session, backend
    finally:
        await client_end.close(1001, "the phone lost its network")
        await asyncio.wait_for(task, 10)
        backend.check()
        await backend.aclose()


@asynccontextmanager
async def tool_session(tools: ServerTools, script: Script) -> AsyncIterator[tuple[Client, ScriptedBackend]]:
    """A running session with ``tools`` whose model follows ``script``."""
    async with scripted_connection(script, store=MemoryResumptionStore(), tools=tools) as (client, _, backend):
        yield client, backend
