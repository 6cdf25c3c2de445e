"""A restart of ``assistant serve`` in the middle of a conversation, as a deploy does it.

The real server process (Gemini backend, its Gemini the fake) is stopped with
SIGTERM while a client tool call is out, the model is speaking and the user's
microphone is streaming; a new process on the same port and the same SQLite
store takes the conversation over. The client is the real google-genai SDK,
doing what an application does on ``goAway``: keep the newest handle,
reconnect with it, answer the call it was working on.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from google.genai import errors, types

from assistant.protocol import FunctionCall, ServerMessage
from tests.conftest import Certificate
from tests.support.browser import chromium
from tests.support.fake_gemini import REPLY, FakeConnection, FakeGemini
from tests.test_gemini_conversations import CHUNK_BYTES, MODEL, SPEECH, kinds, transcript
from tests.test_gemini_serve import ServeProcess, start_assistant_serve
from tests.test_server_sdk import full_config, sdk_client, turn
from tests.test_web_scripted import start_talking

DRAIN_SECONDS = 2


def serve_options(port: int, database: Path, drain_seconds: int) -> list[str]:
    """The same port and SQLite store for the process before and after the restart."""
    return [
        *("--port", str(port), "--resumption-store", "sqlite", "--resumption-db", str(database)),
        *("--drain-seconds", str(drain_seconds)),
    ]


async def stream_microphone(session: object, stop: asyncio.Event) -> int:
    """20 ms chunks of speech until ``stop`` or the connection ends; how many were sent."""
    sent = 0
    with contextlib.suppress(Exception):
        while not stop.is_set():
            chunk = SPEECH[(sent * CHUNK_BYTES) % len(SPEECH) :][:CHUNK_BYTES]
            await session.send_realtime_input(  # type: ignore[attr-defined]
                audio=types.Blob(data=chunk, mime_type="audio/pcm;rate=16000")
            )
            sent += 1
            await asyncio.sleep(0.02)
    return sent


async def test_the_sdk_conversation_survives_a_restart_of_assistant_serve(
    tls_certificate: Certificate, tmp_path: Path, free_tcp_port: int
) -> None:
    told: list[str] = []

    async def before_restart(c: FakeConnection) -> None:
        await c.exchange("hello", "Hi there.")
        assert await c.text() == "lights on in the kitchen"
        call = FunctionCall(id="fc-1", name="turn_on_lights", args={"room_name": "kitchen"})
        await c.send(ServerMessage.calls([call]), ServerMessage.model_audio(REPLY))  # "One moment..."
        await c.audio(0.2)  # the user goes on talking while the lights are switched
        await c.send(ServerMessage.input_transcript("and the hall too"))
        await c.wait_closed()  # by the draining server

    async def after_restart(c: FakeConnection) -> None:
        assert c.presented_handle is None  # started afresh from the saved history
        seed = await c.next("clientContent")
        assert seed.client_content is not None and seed.client_content.turns is not None
        assert [(turn.role, turn.text()) for turn in seed.client_content.turns] == [
            ("user", "hello"),
            ("model", "Hi there."),
            ("user", "lights on in the kitchen"),
            ("user", "and the hall too"),
        ]
        answer = await c.next("clientContent")
        assert answer.client_content is not None and answer.client_content.turn_complete
        assert answer.client_content.turns is not None
        told.append(answer.client_content.turns[0].text())
        await c.reply("The kitchen lights are on. Shall I do the hall?")

    database = tmp_path / "sessions.sqlite3"
    options = serve_options(free_tcp_port, database, DRAIN_SECONDS)
    async with FakeGemini(tls_certificate, [before_restart, after_restart]) as fake:
        first = await start_assistant_serve(tls_certificate, fake.base_url, *options)
        client = sdk_client(first.port, tls_certificate)
        handle: str | None = None
        before: list[types.LiveServerMessage] = []
        try:
            async with client.aio.live.connect(model=MODEL, config=full_config()) as session:
                await session.send_realtime_input(text="hello")
                assert transcript(await turn(session)) == "Hi there."
                await session.send_realtime_input(text="lights on in the kitchen")
                stop_talking = asyncio.Event()
                microphone = asyncio.create_task(stream_microphone(session, stop_talking))
                while not any(m.server_content and m.server_content.input_transcription for m in before):
                    before.append(await anext(session.receive()))
                stopping = asyncio.create_task(first.stop())  # SIGTERM: the deploy begins
                with pytest.raises(errors.APIError) as closed:
                    while True:  # receive() stops at each turn's end; read on to the close
                        async for message in session.receive():
                            before.append(message)
                            update = message.session_resumption_update
                            if update is not None and update.resumable and update.new_handle:
                                handle = update.new_handle
                assert closed.value.code == 1001
                stop_talking.set()
                assert await microphone > 0
            assert await stopping == 0
        finally:
            await first.stop()
        call_kinds = kinds(before)
        # The first turn's handle comes once the store has it (saves run beside the turn), so under load it may
        # follow the second turn's call; it comes before the drain either way.
        assert call_kinds.index("sessionResumptionUpdate") < call_kinds.index("goAway")
        assert next(kind for kind in call_kinds if kind != "sessionResumptionUpdate") == "toolCall"
        assert "goAway" in call_kinds and call_kinds[-1] == "sessionResumptionUpdate"
        assert "toolCallCancellation" not in call_kinds
        [go_away] = [m.go_away for m in before if m.go_away]
        assert go_away.time_left == f"{DRAIN_SECONDS}s"
        assert handle is not None
        [call] = [m.tool_call for m in before if m.tool_call]
        assert any("draining 1 sessions" in line for line in first.log), "\n".join(first.log)

        second = await start_assistant_serve(tls_certificate, fake.base_url, *options)
        try:
            assert second.port == first.port
            async with client.aio.live.connect(model=MODEL, config=full_config(handle)) as session:
                assert call is not None and call.function_calls
                function_call = call.function_calls[0]
                answer = types.FunctionResponse(id=function_call.id, name=function_call.name, response={"output": "on"})
                await session.send_tool_response(function_responses=[answer])
                assert transcript(await turn(session)) == "The kitchen lights are on. Shall I do the hall?"
        finally:
            await second.stop()
        fake.check()
    [text] = told
    assert 'turn_on_lights({"room_name": "kitchen"})' in text and '{"output": "on"}' in text


@pytest.mark.slow
async def test_the_page_conversation_survives_a_restart_of_assistant_serve(
    tls_certificate: Certificate, tmp_path: Path, free_tcp_port: int
) -> None:
    """The browser page in Chromium: the story being told when the restart begins is finished,
    the page moves on the goAway once the turn has its handle, and resumes on the new process."""
    story_started = asyncio.Event()

    async def before_restart(c: FakeConnection) -> None:
        await c.exchange("Hi", "Hello.")
        assert await c.text() == "Tell me a story"
        await c.send(ServerMessage.output_transcript("Once upon a time"))
        story_started.set()
        for _ in range(10):  # two seconds of reply, still streaming when the server is told to stop
            await c.send(ServerMessage.model_audio(REPLY))
            await asyncio.sleep(0.1)
        await c.reply(", the end.")
        await c.wait_closed()

    async def after_restart(c: FakeConnection) -> None:
        assert await c.text(timeout=60) == "What was the story?"
        await c.reply("A short one.")

    database = tmp_path / "sessions.sqlite3"
    options = serve_options(free_tcp_port, database, 5)
    async with FakeGemini(tls_certificate, [before_restart, after_restart]) as fake:
        first = await start_assistant_serve(tls_certificate, fake.base_url, *options, tls=False)
        second: ServeProcess | None = None
        try:
            async with chromium(f"http://127.0.0.1:{first.port}/") as browsing:
                page = browsing.page
                await start_talking(browsing)
                await page.fill("#text-input", "Hi")
                await page.press("#text-input", "Enter")
                before = await browsing.wait_for_stats(lambda s: s["handle"], "the first turn's handle")
                await page.fill("#text-input", "Tell me a story")
                await page.press("#text-input", "Enter")
                await asyncio.wait_for(story_started.wait(), 10)
                assert await first.stop() == 0  # SIGTERM, and the drain ran to its end
                await browsing.wait_for_stats(lambda s: s["state"] == "reconnecting", "the page to notice")
                second = await start_assistant_serve(tls_certificate, fake.base_url, *options, tls=False)
                await browsing.wait_for_stats(
                    lambda s: s["state"] == "open" and s["sessionId"] != before["sessionId"],
                    "the page to reconnect to the new process",
                    timeout=60,
                )
                await page.fill("#text-input", "What was the story?")
                await page.press("#text-input", "Enter")
                await page.locator("#log .message.model").nth(2).wait_for()
                assert await browsing.bubbles("user") == ["Hi", "Tell me a story", "What was the story?"]
                assert await browsing.bubbles("model") == ["Hello.", "Once upon a time, the end.", "A short one."]
                events = await page.locator("#log .event").all_inner_texts()
                assert "The server is moving this conversation to a new connection." in events
                assert browsing.errors == []
        finally:
            await first.stop()
            if second is not None:
                await second.stop()
        fake.check()
    assert any("draining 1 sessions" in line for line in first.log), "\n".join(first.log)
