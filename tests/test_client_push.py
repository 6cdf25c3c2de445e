"""Client messages taken in the socket's callback: whole messages only, nothing overtaken, the rest as before."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import serve

from assistant.protocol import AudioChunk, ClientEvent, TextInput
from assistant.server import DEFAULT_LIVE_PATH, ServerConfig
from assistant.server.handshake import LiveConnection, connection_class
from assistant.session import Session, SessionRequest, SessionSettings
from tests.conftest import ServerFactory
from tests.support.scripted import ScriptedBackend, ScriptedSession
from tests.test_server_raw import closed_with, eventually


class Sink:
    """Takes the messages that start with ``take``; records every offer."""

    def __init__(self) -> None:
        self.offered: list[bytes] = []

    def __call__(self, data: bytes) -> bool:
        self.offered.append(data)
        return data.startswith(b"take")


async def pushing_server(handler: Callable[[LiveConnection], object]) -> tuple[object, str]:
    server = await serve(
        handler,  # type: ignore[arg-type]
        "127.0.0.1",
        0,
        create_connection=connection_class(lambda method, path: False),
    )
    return server, f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


async def test_a_declined_message_holds_back_the_ones_after_it_until_recv_reads_them() -> None:
    sink = Sink()
    read: list[str | bytes] = []

    async def handler(connection: LiveConnection) -> None:
        connection.message_sink = sink
        await eventually(lambda: len(connection.recv_messages.frames) == 2)  # keep-1, and take-2 behind it
        read.extend([await connection.recv(), await connection.recv()])
        await connection.send("read")
        read.append(await connection.recv())
        await connection.wait_closed()

    server, address = await pushing_server(handler)
    async with server:  # type: ignore[attr-defined]
        async with connect(address) as client:
            for message in ("take-1", "keep-1", "take-2"):
                await client.send(message)
            assert await client.recv() == "read"
            await client.send("take-3")
            await client.send(b"keep-3")
            await eventually(lambda: len(read) == 3)
    # take-2 was never offered: keep-1 was queued before it, so it queued too, and recv read both in order.
    assert sink.offered == [b"take-1", b"keep-1", b"take-3", b"keep-3"]
    assert read == ["keep-1", "take-2", b"keep-3"]


async def test_a_fragmented_message_is_never_offered() -> None:
    sink = Sink()
    read: list[str | bytes] = []

    async def handler(connection: LiveConnection) -> None:
        connection.message_sink = sink
        read.append(await connection.recv())
        await connection.wait_closed()

    server, address = await pushing_server(handler)
    async with server:  # type: ignore[attr-defined]
        async with connect(address) as client:
            await client.send(["take-", "in ", "fragments"])
            await eventually(lambda: bool(read))
            await client.send("take-whole")
            await eventually(lambda: len(sink.offered) == 1)
    assert read == ["take-in fragments"] and sink.offered == [b"take-whole"]


def audio(sequence: int) -> str:
    pcm = sequence.to_bytes(2, "little") * 320
    return json.dumps({"realtimeInput": {"audio": {"data": base64.b64encode(pcm).decode(), "mimeType": "audio/pcm"}}})


def text(words: str) -> str:
    return json.dumps({"realtimeInput": {"text": words}})


def described(event: ClientEvent) -> str:
    if isinstance(event, AudioChunk):
        return f"audio {int.from_bytes(event.pcm[:2], 'little')}"
    assert isinstance(event, TextInput)
    return f"text {event.text}"


async def test_microphone_chunks_skip_the_reader_and_nothing_overtakes(
    live_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    offers: list[bool] = []
    take = Session._client_frame_now

    def counted(session: Session, data: bytes) -> bool:
        offers.append(taken := take(session, data))
        return taken

    monkeypatch.setattr(Session, "_client_frame_now", counted)

    async def script(s: ScriptedSession) -> None:
        await s.closed.wait()

    backend = ScriptedBackend(script)
    async with live_server(backend) as server:
        async with connect(f"ws://127.0.0.1:{server.port}{DEFAULT_LIVE_PATH}") as client:
            await client.send(json.dumps({"setup": {"model": "models/test"}}))
            await client.recv()
            [session] = server.sessions
            received = backend.sessions[0].received
            # One at a time, each when the backend writer waits for work: each is taken in the callback.
            for sequence in range(3):
                await eventually(lambda: session.inbound.consumer_idle)
                await client.send(audio(sequence))
                await eventually(lambda count=sequence + 1: len(received) == count)  # type: ignore[misc]
            assert offers == [True, True, True]
            # A burst with words among the chunks: the words go through the reader, and in order.
            await send_all(client, [text("one"), audio(3), audio(4), text("two"), audio(5)])
            await eventually(lambda: len(received) == 8)
            assert [described(event) for event in received] == [
                "audio 0",
                "audio 1",
                "audio 2",
                "text one",
                "audio 3",
                "audio 4",
                "text two",
                "audio 5",
            ]
            assert session.stats.messages_in == 8  # whichever way each came
            assert session.stats.audio_in_s == pytest.approx(6 * 0.02)
            # A malformed frame is declined and read by the reader, which closes with the project's reason.
            await client.send("not json")
            closed = await closed_with(client)
    code, reason = closed
    assert code == 1007 and reason.startswith("message is not valid JSON; send one JSON object per message")
    # The first words were offered and declined; the chunks behind them queued for the reader, unoffered.
    assert offers[:4] == [True, True, True, False] and offers[-1] is False  # the last: the malformed frame


async def send_all(client: ClientConnection, messages: list[str]) -> None:
    for message in messages:
        await client.send(message)


class WritingThrough(ScriptedSession):
    """Takes microphone chunks at once (``send_now``), as the Gemini stream does; words wait for ``gate``."""

    def __init__(self, request: SessionRequest) -> None:
        super().__init__(request)
        self.gate = asyncio.Event()

    def send_now(self, event: ClientEvent) -> bool:
        if not isinstance(event, AudioChunk):
            return False
        self.received.append(event)
        return True

    async def send(self, event: ClientEvent) -> None:
        if isinstance(event, TextInput):
            await self.gate.wait()
        await super().send(event)


async def test_a_chunk_never_overtakes_words_the_backend_is_still_taking(live_server: ServerFactory) -> None:
    async def script(s: ScriptedSession) -> None:
        await s.closed.wait()

    backend = ScriptedBackend(script, stream=WritingThrough)
    async with live_server(backend) as server:
        async with connect(f"ws://127.0.0.1:{server.port}{DEFAULT_LIVE_PATH}") as client:
            await client.send(json.dumps({"setup": {"model": "models/test"}}))
            await client.recv()
            [session], [stream] = server.sessions, backend.sessions
            await client.send(audio(0))
            await eventually(lambda: len(stream.received) == 1)
            await client.send(text("wait for me"))
            await eventually(lambda: not session.inbound.consumer_idle)  # the writer holds the words
            await client.send(audio(1))
            await eventually(lambda: len(session.inbound) == 1)  # the chunk queued behind them
            assert [described(event) for event in stream.received] == ["audio 0"]
            assert isinstance(stream, WritingThrough)
            stream.gate.set()
            await eventually(lambda: len(stream.received) == 3)
            assert [described(event) for event in stream.received] == ["audio 0", "text wait for me", "audio 1"]


async def test_a_chunk_behind_a_full_queue_of_words_waits_in_the_reader_and_is_not_lost(
    live_server: ServerFactory,
) -> None:
    async def script(s: ScriptedSession) -> None:
        await s.closed.wait()

    backend = ScriptedBackend(script, stream=WritingThrough)
    config = ServerConfig(session=SessionSettings(inbound_queue_size=2))
    async with live_server(backend, config=config) as server:
        async with connect(f"ws://127.0.0.1:{server.port}{DEFAULT_LIVE_PATH}") as client:
            await client.send(json.dumps({"setup": {"model": "models/test"}}))
            await client.recv()
            [session], [stream] = server.sessions, backend.sessions
            await client.send(text("held"))
            await eventually(lambda: not session.inbound.consumer_idle)  # the writer holds these words
            await send_all(client, [text("queued one"), text("queued two")])
            await eventually(lambda: len(session.inbound) == 2)  # full, and nothing in it may be dropped
            await client.send(audio(7))  # no room without waiting: the reader takes it and waits
            await eventually(lambda: session.stats.messages_in == 4)  # read before the words move on
            assert isinstance(stream, WritingThrough)
            stream.gate.set()
            await eventually(lambda: len(stream.received) == 4)
            assert [described(event) for event in stream.received] == [
                "text held",
                "text queued one",
                "text queued two",
                "audio 7",
            ]
