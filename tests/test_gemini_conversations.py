"""The Gemini backend in the whole chain, with a fake Gemini upstream.

    google-genai SDK (client) -> LiveServer + Session -> GeminiBackend -> google-genai SDK -> FakeGemini

Every hop is real (TLS websockets, the SDK on both sides); only Gemini is
scripted. Each test is one of the conversations the backend must carry:
what the client sees, and what Gemini received on which connection.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google import genai
from google.genai import errors, types
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from assistant.backends.gemini.backend import GeminiBackend
from assistant.backends.gemini.convert import with_server_defaults
from assistant.backends.gemini.options import GeminiSettings
from assistant.protocol import (
    FunctionCall,
    ServerMessage,
    UsageMetadata,
)
from assistant.server import LiveServer
from assistant.session import MemoryResumptionStore, ServerTools
from assistant.session.tools import merge_server_tools
from tests.conftest import Certificate, ServerFactory
from tests.support.fake_gemini import (
    BAD_KEY_REASON,
    DEFAULT_KEY,
    INTERNAL_REASON,
    REPLY,
    FakeConnection,
    FakeGemini,
    ModelRules,
    Script,
)
from tests.test_server_sdk import full_config, sdk_client, turn
from tests.test_session import EchoTools

MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
CHUNK_BYTES = 640  # 20 ms at 16 kHz
SPEECH = bytes(range(256)) * 40  # 0.32 s at 16 kHz, every chunk different
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32
FAST = GeminiSettings(backoff_initial_s=0.01, handle_wait_s=0.3, connect_timeout_s=5.0)


@dataclass
class Chain:
    fake: FakeGemini
    server: LiveServer
    backend: GeminiBackend
    certificate: Certificate

    def client(self) -> genai.Client:
        return sdk_client(self.server.port, self.certificate)

    def upstream(self, number: int) -> FakeConnection:
        return self.fake.connections[number]


ChainFactory = Callable[..., Any]


@pytest.fixture
def make_chain(
    tls_certificate: Certificate, live_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> ChainFactory:
    """Start the fake Gemini and a server with the Gemini backend pointed at it.

    The backend's SDK finds the fake through its documented settings: the
    key in GEMINI_API_KEY, the certificate in SSL_CERT_FILE, the address in
    --gemini-base-url (or GOOGLE_GEMINI_BASE_URL with ``base_url_from_env``).
    """

    @asynccontextmanager
    async def start(
        scripts: Sequence[Script],
        *,
        key: str = DEFAULT_KEY,
        models: set[str] | None = None,
        rules: ModelRules | None = None,
        tools: ServerTools | None = None,
        store: MemoryResumptionStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        base_url_from_env: bool = False,
        **settings: Any,
    ) -> AsyncIterator[Chain]:
        async with FakeGemini(tls_certificate, scripts, models=models, rules=rules) as fake:
            monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
            monkeypatch.setenv("GEMINI_API_KEY", key)
            monkeypatch.setenv("SSL_CERT_FILE", str(tls_certificate.cert))
            if base_url_from_env:
                monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.base_url)
            base_url = None if base_url_from_env else fake.base_url
            backend = GeminiBackend(replace(FAST, base_url=base_url, **settings), clock=clock)
            async with live_server(
                backend, tls_cert=tls_certificate.cert, tls_key=tls_certificate.key, store=store, tools=tools
            ) as server:
                yield Chain(fake, server, backend, tls_certificate)
            fake.check()

    return start


async def send_speech(session: Any, pcm: bytes = SPEECH, rate: int = 16000) -> None:
    chunk = rate * 2 // 50  # 20 ms
    for start in range(0, len(pcm), chunk):
        await session.send_realtime_input(
            audio=types.Blob(data=pcm[start : start + chunk], mime_type=f"audio/pcm;rate={rate}")
        )


def transcript(messages: list[types.LiveServerMessage], field: str = "output_transcription") -> str:
    parts = [getattr(m.server_content, field) for m in messages if m.server_content]
    return "".join(part.text for part in parts if part is not None and part.text)


def audio_of(messages: list[types.LiveServerMessage]) -> bytes:
    return b"".join(m.data for m in messages if m.data)


def kinds(messages: list[types.LiveServerMessage]) -> list[str]:
    """A compact name for each message, for asserting order."""
    names = []
    for m in messages:
        content = m.server_content
        if m.tool_call:
            names.append("toolCall")
        elif m.tool_call_cancellation:
            names.append("toolCallCancellation")
        elif m.go_away or m.session_resumption_update:
            names.append("goAway" if m.go_away else "sessionResumptionUpdate")
        elif content and content.interrupted:
            names.append("interrupted")
        elif content and content.turn_complete:
            names.append("turnComplete")
        elif content and content.model_turn:
            names.append("modelTurn")
        else:
            names.append("other")
    return names


def declarations(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [declaration for tool in tools for declaration in tool.get("functionDeclarations", [])]


def other_tools(tools: list[dict[str, Any]]) -> list[str]:
    rest = [{k: v for k, v in tool.items() if k != "functionDeclarations"} for tool in tools]
    return sorted(json.dumps(tool, sort_keys=True) for tool in rest if tool)


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


# -- a turn, the setup and what the client sends ------------------------------


async def test_an_audio_turn_with_transcriptions_and_the_servers_defaults(make_chain: ChainFactory) -> None:
    usage = UsageMetadata(prompt_token_count=12, response_token_count=7, total_token_count=19)

    async def gemini(c: FakeConnection) -> None:
        assert await c.audio(len(SPEECH) / 32_000) == SPEECH
        end = await c.next("realtimeInput")
        assert end.realtime_input is not None and end.realtime_input.audio_stream_end
        await c.send(
            ServerMessage.input_transcript("what is "),
            ServerMessage.input_transcript("this?", finished=True),
            ServerMessage.model_audio(REPLY[:4800]),
            ServerMessage.output_transcript("A "),
            ServerMessage.model_audio(REPLY[4800:]),
            ServerMessage.output_transcript("cup."),
            ServerMessage.generation_done(),
            ServerMessage.turn_done(usage),
        )
        await c.send_handle()
        await c.exchange("and now?", "Still a cup.")

    async with make_chain([gemini], base_url_from_env=True) as chain:
        async with chain.client().aio.live.connect(model=MODEL, config=types.LiveConnectConfig()) as session:
            await send_speech(session)
            await session.send_realtime_input(audio_stream_end=True)
            first = await turn(session)
            await session.send_realtime_input(text="and now?")
            second = await turn(session)

        assert transcript(first, "input_transcription") == "what is this?"
        assert transcript(first) == "A cup."
        assert audio_of(first) == REPLY
        assert next(m.data for m in first if m.data) == REPLY[:4800]  # chunks arrive as Gemini sent them
        assert first[-1].server_content.turn_complete and first[-1].usage_metadata.total_token_count == 19
        assert any(m.server_content and m.server_content.generation_complete for m in first)
        assert transcript(second) == "Still a cup."
        # Gemini's handles are the backend's business, never the client's.
        assert "sessionResumptionUpdate" not in kinds(first + second)

        upstream = chain.upstream(0)
        assert upstream.path.endswith("/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent")
        assert upstream.api_key == DEFAULT_KEY
        setup = upstream.setup
        assert setup is not None and setup.model == f"models/{MODEL}"
        # The client asked for nothing: the server's defaults are what Gemini got.
        assert setup.response_modalities() == ["AUDIO"]
        assert setup.input_audio_transcription is not None and setup.output_audio_transcription is not None
        assert setup.voice_name() == "Puck"
        assert setup.context_window_compression is not None
        assert setup.session_resumption is not None and setup.session_resumption.handle is None
        assert "generationConfig" in upstream.setup_json["setup"]


async def test_every_setup_field_the_client_sent_reaches_gemini(make_chain: ChainFactory) -> None:
    async def gemini(c: FakeConnection) -> None:
        await c.wait_closed()

    config = full_config()
    config.tools = [*(config.tools or []), types.Tool(google_search=types.GoogleSearch())]
    config.proactivity = types.ProactivityConfig(proactive_audio=True)
    config.enable_affective_dialog = True
    async with make_chain([gemini], tools=EchoTools()) as chain:
        async with chain.client().aio.live.connect(model=MODEL, config=config):
            await eventually(lambda: bool(chain.server.sessions))
            [live] = chain.server.sessions
            assert live.client_setup is not None
            merged = merge_server_tools(live.client_setup, live.tools)
            sent = with_server_defaults(merged, chain.backend.settings)
        got = chain.upstream(0).setup
        assert got is not None
        received = got.model_dump(by_alias=True, exclude_none=True)
        # Our own handle never goes upstream; Gemini's resumption is always on.
        assert received.pop("sessionResumption") == {}
        sent.pop("sessionResumption")
        # The SDK gathers all function declarations into one tool; the order of tools means nothing.
        sent_tools, received_tools = sent.pop("tools"), received.pop("tools")
        assert declarations(received_tools) == declarations(sent_tools)
        # The server's tools once, after the client's.
        assert [d["name"] for d in declarations(received_tools)] == ["turn_on_lights", "echo", "slow", "client_tool"]
        assert other_tools(received_tools) == other_tools(sent_tools) == ['{"googleSearch": {}}']
        assert received == sent
        assert got.voice_name() == "Kore" and got.generation_config is not None
        assert got.generation_config.temperature == 0.4


async def test_every_kind_of_client_input_reaches_gemini_in_order(make_chain: ChainFactory) -> None:
    async def gemini(c: FakeConnection) -> None:
        assert await c.text() == "done"
        await c.reply("Got it all.")
        assert await c.text() == "still there?"
        await c.close(1011, INTERNAL_REASON)

    async def after_drop(c: FakeConnection) -> None:
        assert c.setup is not None and c.setup.system_instruction is not None
        assert c.setup.system_instruction.text() == "Answer in French."  # the update outlives the connection
        await c.exchange("still there?", "Oui.")

    async with make_chain([gemini, after_drop]) as chain:
        async with chain.client().aio.live.connect(model=MODEL, config=types.LiveConnectConfig()) as session:
            await session.send_realtime_input(activity_start=types.ActivityStart())
            await send_speech(session, SPEECH[:CHUNK_BYTES])
            await session.send_realtime_input(activity_end=types.ActivityEnd())
            await session.send_realtime_input(audio_stream_end=True)
            await session.send_realtime_input(video=types.Blob(data=JPEG, mime_type="image/jpeg"))
            picture = types.Part(inline_data=types.Blob(data=JPEG + b"\x01", mime_type="image/jpeg"))
            await session.send_client_content(
                turns=types.Content(role="user", parts=[types.Part(text="look:"), picture]), turn_complete=False
            )
            await session.send_context_update(system_instruction="Answer in French.")
            await session.send_realtime_input(text="done")
            await turn(session)
            await session.send_realtime_input(text="still there?")
            assert transcript(await turn(session)) == "Oui."
        received = chain.upstream(0).received
        assert [m.kind for m in received] == [
            "realtimeInput",
            "realtimeInput",
            "realtimeInput",
            "realtimeInput",
            "realtimeInput",
            "clientContent",
            "contextUpdate",
            "realtimeInput",
            "realtimeInput",
        ]
        realtime = [m.realtime_input for m in received if m.realtime_input is not None]
        assert realtime[0].activity_start is not None and realtime[2].activity_end is not None
        assert realtime[1].audio is not None and realtime[1].audio.data == SPEECH[:CHUNK_BYTES]
        assert realtime[3].audio_stream_end and realtime[4].video is not None and realtime[4].video.data == JPEG
        content = received[5].client_content
        assert content is not None and content.turns is not None and content.turn_complete is False
        assert content.turns[0].parts[0].text == "look:"
        assert content.turns[0].parts[1].inline_data is not None
        assert content.turns[0].parts[1].inline_data.data == JPEG + b"\x01"
        update = received[6].context_update
        assert update is not None and update.system_instruction is not None
        assert update.system_instruction.text() == "Answer in French."
        # After the drop: the newest frame again, then what the user said since the last turn.
        assert [m.kind for m in chain.upstream(1).received] == ["realtimeInput", "realtimeInput"]
        assert chain.upstream(1).frames_received() == [JPEG]


async def test_a_48_khz_microphone_reaches_gemini_at_16_khz(make_chain: ChainFactory) -> None:
    seconds, tone_hz = 0.6, 440.0
    t = np.arange(int(48_000 * seconds)) / 48_000
    pcm48 = (np.sin(2 * math.pi * tone_hz * t) * 12_000).astype("<i2").tobytes()

    async def gemini(c: FakeConnection) -> None:
        await c.audio(0.5)  # checks every chunk says audio/pcm;rate=16000
        await c.reply("I hear a tone.")

    async with make_chain([gemini]) as chain:
        async with chain.client().aio.live.connect(model=MODEL, config=types.LiveConnectConfig()) as session:
            await send_speech(session, pcm48, rate=48_000)
            assert transcript(await turn(session)) == "I hear a tone."
        heard = np.frombuffer(chain.upstream(0).audio_received(), dtype="<i2").astype(np.float64)
        # One third of the samples (less the resampler's delay), and still a 440 Hz tone.
        assert 0.9 * len(t) / 3 <= len(heard) <= len(t) / 3
        spectrum = np.abs(np.fft.rfft(heard * np.hanning(len(heard))))
        peak_hz = np.argmax(spectrum) * 16_000 / len(heard)
        assert abs(peak_hz - tone_hz) < 5


async def test_camera_frames_are_capped_and_unchanged_frames_skipped(make_chain: ChainFactory) -> None:
    now = [100.0]

    async def gemini(c: FakeConnection) -> None:
        await c.wait_closed()

    async with make_chain([gemini], clock=lambda: now[0], max_fps=2.0) as chain:
        async with chain.client().aio.live.connect(model=MODEL, config=types.LiveConnectConfig()) as session:

            async def burst(frames: list[bytes], marker: str) -> None:
                for frame in frames:
                    await session.send_realtime_input(video=types.Blob(data=frame, mime_type="image/jpeg"))
                await session.send_realtime_input(text=marker)
                await eventually(lambda: marker in chain.upstream(0).texts_received())

            distinct = [JPEG + bytes([i]) for i in range(30)]
            await burst(distinct[:10], "t=0")  # ten frames in no time: one passes
            now[0] += 0.5
            await burst(distinct[10:20], "t=0.5")  # half a second later (2 fps): one more
            now[0] += 0.2
            await burst(distinct[20:25], "t=0.7")  # too soon: none
            now[0] += 0.3
            await burst([distinct[10]], "t=1.0 same")  # due, but the same picture as the last one sent
            now[0] += 0.5
            await burst([distinct[29]], "t=1.5")
        assert chain.upstream(0).frames_received() == [distinct[0], distinct[10], distinct[29]]


# -- tools and barge-in ------------------------------------------------------------


async def test_a_tool_call_answered_by_the_clients_tool(make_chain: ChainFactory) -> None:
    async def gemini(c: FakeConnection) -> None:
        assert await c.text() == "lights on in the kitchen"
        await c.send(
            ServerMessage.calls([FunctionCall(id="fc-1", name="turn_on_lights", args={"room_name": "kitchen"})])
        )
        response = (await c.next("toolResponse")).tool_response
        assert response is not None
        [answer] = response.function_responses
        assert (answer.id, answer.name, answer.response) == ("fc-1", "turn_on_lights", {"output": "on"})
        await c.reply("The kitchen is lit.")

    async with make_chain([gemini]) as chain:
        async with chain.client().aio.live.connect(model=MODEL, config=full_config()) as session:
            await session.send_realtime_input(text="lights on in the kitchen")
            call = (await anext(session.receive())).tool_call
            assert call is not None and call.function_calls[0].args == {"room_name": "kitchen"}
            await session.send_tool_response(
                function_responses=[
                    types.FunctionResponse(
                        id=call.function_calls[0].id, name="turn_on_lights", response={"output": "on"}
                    )
                ]
            )
            assert transcript(await turn(session)) == "The kitchen is lit."


async def test_a_tool_call_answered_by_a_server_side_tool(make_chain: ChainFactory) -> None:
    async def gemini(c: FakeConnection) -> None:
        assert c.setup is not None
        assert [d.name for d in c.setup.function_declarations()] == ["echo", "slow", "client_tool"]
        assert await c.text() == "what time is it?"
        await c.send(ServerMessage.calls([FunctionCall(id="fc-9", name="echo", args={"time": "12:30"})]))
        response = (await c.next("toolResponse")).tool_response
        assert response is not None
        assert response.function_responses[0].model_dump(exclude_none=True) == {
            "id": "fc-9",
            "name": "echo",
            "response": {"output": {"time": "12:30"}},
        }
        await c.reply("Half past twelve.")

    tools = EchoTools()
    async with make_chain([gemini], tools=tools) as chain:
        async with chain.client().aio.live.connect(model=MODEL, config=types.LiveConnectConfig()) as session:
            await session.send_realtime_input(text="what time is it?")
            answer = await turn(session)
        assert "toolCall" not in kinds(answer)  # the server ran it; the client never saw the call
        assert transcript(answer) == "Half past twelve."
        assert tools.started == ["fc-9"]


@pytest.mark.parametrize("gemini_cancels", [True, False], ids=["gemini-cancels", "backend-cancels"])
async def test_barge_in_cancels_pending_calls(make_chain: ChainFactory, gemini_cancels: bool) -> None:
    async def gemini(c: FakeConnection) -> None:
        assert await c.text() == "lights on and look up the weather"
        await c.send(
            ServerMessage.calls(
                [
                    FunctionCall(id="fc-1", name="turn_on_lights", args={"room_name": "hall"}),
                    FunctionCall(id="fc-2", name="slow", args={"query": "weather"}),
                ]
            ),
            ServerMessage.model_audio(REPLY),
        )
        await c.audio(0.1)  # the user talks over the reply
        await c.send(ServerMessage.interrupted_turn())
        if gemini_cancels:
            await c.send(ServerMessage.cancel_calls(["fc-1", "fc-2"]))
        await c.send(ServerMessage.turn_done())
        await c.send_handle()
        await c.exchange("never mind", "OK.")

    tools = EchoTools()
    async with make_chain([gemini], tools=tools) as chain:
        async with chain.client().aio.live.connect(model=MODEL, config=full_config()) as session:
            await session.send_realtime_input(text="lights on and look up the weather")
            assert (await anext(session.receive())).tool_call is not None
            await send_speech(session)
            rest = await turn(session)
            assert kinds(rest) == ["modelTurn", "interrupted", "toolCallCancellation", "turnComplete"]
            assert rest[2].tool_call_cancellation.ids == ["fc-1"]  # the client's call; fc-2 was the server's
            await session.send_realtime_input(text="never mind")
            assert transcript(await turn(session)) == "OK."
        assert tools.cancelled == ["fc-2"]
        assert not [m for m in chain.upstream(0).received if m.tool_response is not None]


# -- continuity ----------------------------------------------------------------------


async def test_go_away_moves_the_next_turn_to_a_new_connection_unseen(make_chain: ChainFactory) -> None:
    handles: list[str | None] = []

    async def first(c: FakeConnection) -> None:
        handles.append(await c.exchange("one", "Reply one."))
        assert await c.text() == "two"
        await c.send(ServerMessage.output_transcript("Reply "))
        await c.go_away("50s")  # mid-reply: the backend finishes this turn here, then moves
        await c.send(ServerMessage.output_transcript("two."))
        await c.send(ServerMessage.turn_done())
        handles.append(await c.send_handle())

    async def second(c: FakeConnection) -> None:
        assert c.presented_handle == handles[-1]
        await c.exchange("three", "Reply three.")

    async with make_chain([first, second]) as chain:
        async with chain.client().aio.live.connect(model=MODEL, config=types.LiveConnectConfig()) as session:
            seen = []
            for text in ("one", "two", "three"):
                await session.send_realtime_input(text=text)
                seen.append(await turn(session))
        assert [transcript(t) for t in seen] == ["Reply one.", "Reply two.", "Reply three."]
        assert all(kinds(t)[-1] == "turnComplete" and "goAway" not in kinds(t) for t in seen)
        assert chain.upstream(0).texts_received() == ["one", "two"]
        assert chain.upstream(1).texts_received() == ["three"]
        await eventually(lambda: chain.upstream(0).websocket.close_code == 1000)  # the backend closed it


async def test_go_away_with_a_turn_that_runs_past_time_left_moves_and_asks_again(make_chain: ChainFactory) -> None:
    handles: list[str | None] = []

    async def first(c: FakeConnection) -> None:
        handles.append(await c.exchange("one", "Reply one."))
        assert await c.text() == "two"
        await c.send(ServerMessage.output_transcript("Reply t"))
        await c.go_away("0.4s")  # ... and the turn never ends here

    async def second(c: FakeConnection) -> None:
        assert c.presented_handle == handles[0]
        assert await c.text() == "two"  # the user's words, sent again
        await c.reply("Reply two.")

    async with make_chain([first, second]) as chain:
        async with chain.client().aio.live.connect(model=MODEL, config=types.LiveConnectConfig()) as session:
            await session.send_realtime_input(text="one")
            await turn(session)
            await session.send_realtime_input(text="two")
            second_turn = await turn(session)
        assert kinds(second_turn) == ["other", "interrupted", "other", "modelTurn", "other", "turnComplete"]
        assert transcript(second_turn) == "Reply tReply two."


async def test_a_1011_mid_turn_resumes_with_the_handle_and_replays_what_the_user_said(make_chain: ChainFactory) -> None:
    handles: list[str | None] = []

    async def first(c: FakeConnection) -> None:
        handles.append(await c.exchange("one", "Reply one."))
        assert await c.audio(len(SPEECH) / 32_000) == SPEECH
        await c.send(ServerMessage.model_audio(REPLY[:960]))
        await c.close(1011, INTERNAL_REASON)

    async def second(c: FakeConnection) -> None:
        assert c.presented_handle == handles[0]
        assert await c.audio(len(SPEECH) / 32_000) == SPEECH  # nothing the user said is lost
        await c.reply("Reply two.")

    async with make_chain([first, second]) as chain:
        async with chain.client().aio.live.connect(model=MODEL, config=types.LiveConnectConfig()) as session:
            await session.send_realtime_input(text="one")
            await turn(session)
            await send_speech(session)
            second_turn = await turn(session)
        assert kinds(second_turn) == ["modelTurn", "interrupted", "other", "modelTurn", "other", "turnComplete"]
        assert audio_of(second_turn) == REPLY[:960] + REPLY
        assert transcript(second_turn) == "Reply two."
        assert chain.upstream(1).audio_received() == SPEECH


async def test_a_1011_before_any_handle_re_seeds_the_history(make_chain: ChainFactory) -> None:
    async def first(c: FakeConnection) -> None:
        await c.exchange("one", "Reply one.", handle=False)
        await c.audio(len(SPEECH) / 32_000)
        await c.close(1011, INTERNAL_REASON)

    async def second(c: FakeConnection) -> None:
        assert c.presented_handle is None
        seed = (await c.next()).client_content
        assert seed is not None and not seed.turn_complete
        assert [(turn.role, turn.text()) for turn in seed.turns or []] == [("user", "one"), ("model", "Reply one.")]
        assert await c.audio(len(SPEECH) / 32_000) == SPEECH
        await c.reply("Reply two.")

    async with make_chain([first, second]) as chain:
        async with chain.client().aio.live.connect(model=MODEL, config=types.LiveConnectConfig()) as session:
            await session.send_realtime_input(text="one")
            await turn(session)
            await send_speech(session)
            assert transcript(await turn(session)) == "Reply two."


async def test_gemini_failing_again_and_again_ends_in_a_clear_close(make_chain: ChainFactory) -> None:
    async def drops(c: FakeConnection) -> None:
        await c.close(1011, INTERNAL_REASON)

    async def first(c: FakeConnection) -> None:
        assert await c.text() == "one"
        await drops(c)

    async with make_chain([first, drops, drops], reconnect_attempts=2) as chain:
        async with chain.client().aio.live.connect(model=MODEL, config=types.LiveConnectConfig()) as session:
            await session.send_realtime_input(text="one")
            with pytest.raises(errors.APIError) as caught:
                await turn(session)
        assert caught.value.code == 1011
        assert f"lost Gemini and 2 reconnects failed: {INTERNAL_REASON}" in str(caught.value)
        assert len(chain.fake.connections) == 3


async def test_a_resumed_client_session_resumes_geminis_session_too(make_chain: ChainFactory) -> None:
    handles: list[str | None] = []

    async def first(c: FakeConnection) -> None:
        handles.append(await c.exchange("one", "Reply one."))

    async def second(c: FakeConnection) -> None:
        assert c.presented_handle == handles[0]
        await c.exchange("two", "Reply two.")

    config = types.LiveConnectConfig(session_resumption=types.SessionResumptionConfig())
    async with make_chain([first, second], store=MemoryResumptionStore()) as chain:
        client = chain.client()
        async with client.aio.live.connect(model=MODEL, config=config) as session:
            await session.send_realtime_input(text="one")
            await turn(session)
            update = (await anext(session.receive())).session_resumption_update
            assert update is not None and update.new_handle not in handles  # the session's own handle
        config.session_resumption = types.SessionResumptionConfig(handle=update.new_handle)
        async with client.aio.live.connect(model=MODEL, config=config) as session:
            await session.send_realtime_input(text="two")
            assert transcript(await turn(session)) == "Reply two."


async def test_an_expired_gemini_handle_falls_back_to_the_history(make_chain: ChainFactory) -> None:
    async def first(c: FakeConnection) -> None:
        await c.exchange("one", "Reply one.")

    async def second(c: FakeConnection) -> None:
        raise AssertionError("the fake refuses the unknown handle before any script runs")

    async def third(c: FakeConnection) -> None:
        assert c.presented_handle is None
        seed = (await c.next()).client_content
        assert seed is not None
        assert [(turn.role, turn.text()) for turn in seed.turns or []] == [("user", "one"), ("model", "Reply one.")]
        await c.exchange("two", "Reply two.")

    config = types.LiveConnectConfig(session_resumption=types.SessionResumptionConfig())
    async with make_chain([first, second, third], store=MemoryResumptionStore()) as chain:
        client = chain.client()
        async with client.aio.live.connect(model=MODEL, config=config) as session:
            await session.send_realtime_input(text="one")
            await turn(session)
            update = (await anext(session.receive())).session_resumption_update
        assert update is not None
        await eventually(lambda: chain.upstream(0).websocket.close_code is not None)
        chain.fake.handles.clear()  # meanwhile Gemini forgot the session
        config.session_resumption = types.SessionResumptionConfig(handle=update.new_handle)
        async with client.aio.live.connect(model=MODEL, config=config) as session:
            await session.send_realtime_input(text="two")
            assert transcript(await turn(session)) == "Reply two."
        assert chain.upstream(1).close_code == 1007


# -- errors the client must hear about ---------------------------------------------------


async def test_a_rejected_key_reaches_the_client_as_geminis_close(make_chain: ChainFactory) -> None:
    async def never(c: FakeConnection) -> None:
        raise AssertionError("a rejected connection runs no script")

    async with make_chain([never], key="not-the-key") as chain:
        with pytest.raises(errors.APIError) as caught:
            async with chain.client().aio.live.connect(model=MODEL, config=types.LiveConnectConfig()):
                pass
        assert caught.value.code == 1007
        assert BAD_KEY_REASON in str(caught.value)
        assert len(chain.fake.connections) == 1  # no retries for a request Gemini refused


async def test_an_unknown_model_reaches_the_client_as_geminis_close(make_chain: ChainFactory) -> None:
    async def never(c: FakeConnection) -> None:
        raise AssertionError("a rejected connection runs no script")

    async with make_chain([never], models={f"models/{MODEL}"}) as chain:
        with pytest.raises(errors.APIError) as caught:
            async with chain.client().aio.live.connect(model="gemini-0-nope", config=types.LiveConnectConfig()):
                pass
        assert caught.value.code == 1008
        assert "models/gemini-0-nope is not found for API version v1beta" in str(caught.value)


async def test_a_setup_the_developer_api_cannot_take_is_refused_with_the_sdks_reason_in_the_log(
    make_chain: ChainFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async def never(c: FakeConnection) -> None:
        raise AssertionError("nothing reaches Gemini")

    async with make_chain([never]) as chain:
        # The SDK would refuse this itself, so a raw websocket sends it (as a browser page could).
        async with connect(chain.server.live_url, ssl=chain.certificate.client_context()) as websocket:
            await websocket.send(json.dumps({"setup": {"model": f"models/{MODEL}", "explicitVadSignal": True}}))
            with pytest.raises(ConnectionClosed):
                await websocket.recv()
        assert websocket.close_code == 1007
        reason = websocket.close_reason or ""
        assert reason.startswith("the setup is not one this Gemini API accepts (error e-")
        error_id = reason.split("(error ")[1].split(";")[0]
        # The SDK's own words stay in the server log, under the id the client was given.
        assert any(
            error_id in r.getMessage() and "explicit_vad_signal parameter is only supported" in r.getMessage()
            for r in caplog.records
        )
        assert not chain.fake.connections


async def test_vertex_ai_without_credentials_closes_with_the_reason(
    live_server: ServerFactory, tls_certificate: Certificate, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    backend = GeminiBackend(GeminiSettings(vertex=True, project="my-project", location="us-central1"))
    async with live_server(backend, tls_cert=tls_certificate.cert, tls_key=tls_certificate.key) as server:
        with pytest.raises(errors.APIError) as caught:
            async with sdk_client(server.port, tls_certificate).aio.live.connect(model=MODEL):
                pass
    assert caught.value.code == 1011
    assert "Vertex AI credentials could not be loaded (error e-" in str(caught.value)
    assert "missing.json" not in str(caught.value)  # google-auth's words (a file path) stay in the log


async def test_a_client_call_survives_a_dropped_gemini_connection(make_chain: ChainFactory) -> None:
    told: list[str] = []

    async def first(c: FakeConnection) -> None:
        await c.exchange("hello", "Hi there.")
        assert await c.text() == "lights on in the kitchen"
        call = FunctionCall(id="fc-1", name="turn_on_lights", args={"room_name": "kitchen"})
        await c.send(ServerMessage.calls([call]))
        await c.close(1011, INTERNAL_REASON)

    async def second(c: FakeConnection) -> None:
        assert c.presented_handle is None  # Gemini's handle would replay the words and make it call again
        seed = await c.next("clientContent")
        assert seed.client_content is not None and seed.client_content.turns is not None
        assert [turn.text() for turn in seed.client_content.turns] == [
            "hello",
            "Hi there.",
            "lights on in the kitchen",
        ]
        answer = await c.next("clientContent")
        assert answer.client_content is not None and answer.client_content.turn_complete
        assert answer.client_content.turns is not None
        told.append(answer.client_content.turns[0].text())
        await c.reply("The kitchen is lit.")

    async with make_chain([first, second]) as chain:
        async with chain.client().aio.live.connect(model=MODEL, config=full_config()) as session:
            await session.send_realtime_input(text="hello")
            await turn(session)
            await session.send_realtime_input(text="lights on in the kitchen")
            received = [await anext(session.receive()) for _ in range(2)]
            assert kinds(received) == ["sessionResumptionUpdate", "toolCall"]
            assert kinds([await anext(session.receive())]) == ["interrupted"]  # the reply was cut, not the call
            call = received[1].tool_call.function_calls[0]
            answer = types.FunctionResponse(id=call.id, name=call.name, response={"output": "on"})
            await session.send_tool_response(function_responses=[answer])
            rest = await turn(session)
            assert "toolCallCancellation" not in kinds(rest)
            assert transcript(rest) == "The kitchen is lit."
        assert not [m for m in chain.upstream(1).received if m.tool_response is not None]
        assert chain.upstream(1).texts_received() == []  # the words that led to the call were not sent again
    [text] = told
    assert 'turn_on_lights({"room_name": "kitchen"})' in text and '{"output": "on"}' in text
