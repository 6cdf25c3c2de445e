"""The browser client in real headless Chromium against a real ``LiveServer``.

The server runs the scripted backend, so these tests pin down what the page
does with each protocol message: the microphone audio it sends (a question
spoken by espeak-ng through Chromium's fake microphone), the transcripts and
reply audio it shows and plays, barge-in, tool calls, camera and screen
frames, push-to-talk and settings, and reconnection with resumption after a
server restart. Assertions read the page's own counters (samples that
reached the audio graph), never a sleep.
"""

from __future__ import annotations

import asyncio
import struct
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.cli.serve import default_static_dir
from assistant.protocol import (
    ActivityEnd,
    ActivityStart,
    AudioChunk,
    AudioStreamEnd,
    FunctionCall,
    ServerMessage,
    TextInput,
    ToolResponses,
    VideoFrame,
)
from assistant.protocol.models import GoAway
from assistant.server import LiveServer, ServerConfig
from assistant.session import MemoryResumptionStore, ResumptionStore, SqliteResumptionStore
from tests.conftest import ServerFactory
from tests.support.browser import DESKTOP, Browsing, chromium, next_event, spoken_wav, utterance, voiced_seconds
from tests.support.scripted import ScriptedBackend, ScriptedSession, idle

WEB = default_static_dir()
REPLY_RATE = 24_000
QUESTION = "What time is it?"
ANSWER = ("It is", " noon.")


def tone(seconds: float, frequency: float = 440.0, amplitude: float = 0.3) -> bytes:
    """A reply stand-in: a sine at 24 kHz, 16-bit PCM."""
    t = np.arange(round(seconds * REPLY_RATE)) / REPLY_RATE
    return (amplitude * np.sin(2 * np.pi * frequency * t) * 32767).astype("<i2").tobytes()


async def speak(session: ScriptedSession, pcm: bytes, chunk_s: float = 0.1) -> None:
    """Stream reply audio in chunks, as a backend does."""
    step = round(chunk_s * REPLY_RATE) * 2
    for start in range(0, len(pcm), step):
        await session.stream(ServerMessage.model_audio(pcm[start : start + step]))


async def answer(session: ScriptedSession, reply_s: float = 1.5, question: str = QUESTION) -> None:
    """One complete turn: the question's transcript, the spoken answer, turnComplete."""
    session.emit(ServerMessage.input_transcript("What time", False), ServerMessage.input_transcript(" is it?", True))
    await speak(session, tone(reply_s))
    session.emit(
        ServerMessage.output_transcript(ANSWER[0]),
        ServerMessage.output_transcript(ANSWER[1]),
        ServerMessage.generation_done(),
        ServerMessage.turn_done(),
    )


def frames_for(stats: dict[str, Any], seconds: float) -> int:
    """Frames at the page's audio context rate for ``seconds`` of 24 kHz reply."""
    return round(seconds * REPLY_RATE * stats["contextRate"] / REPLY_RATE)


def jpeg_size(jpeg: bytes) -> tuple[int, int]:
    """Width and height from a JPEG's start-of-frame marker."""
    assert jpeg[:2] == b"\xff\xd8", "not a JPEG"
    at = 2
    while at < len(jpeg):
        marker, length = jpeg[at + 1], struct.unpack(">H", jpeg[at + 2 : at + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            height, width = struct.unpack(">HH", jpeg[at + 5 : at + 9])
            return width, height
        at += 2 + length
    raise AssertionError("JPEG without a start-of-frame marker")


async def start_talking(browsing: Browsing) -> None:
    await browsing.page.click("#start")
    await browsing.wait_for_stats(lambda s: s["state"] == "open" and s["micOpen"], "the page to connect")


@pytest.fixture
def question_wav(tmp_path: Path) -> Path:
    return spoken_wav("what time is it", tmp_path / "question.wav")


async def test_spoken_question_shows_both_transcripts_and_plays_the_reply(
    live_server: ServerFactory, question_wav: Path
) -> None:
    heard: list[bytes] = []

    async def script(session: ScriptedSession) -> None:
        heard.append(await utterance(session))
        await answer(session, reply_s=1.5)
        await session.closed.wait()

    backend = ScriptedBackend(script)
    async with live_server(backend, static_dir=WEB) as server:
        origin = f"http://127.0.0.1:{server.port}"
        async with chromium(f"{origin}/", microphone=question_wav) as browsing:
            await start_talking(browsing)
            stats = await browsing.wait_for_stats(
                lambda s: s["playback"]["played"] >= frames_for(s, 1.5) - 2 and not s["playback"]["playing"],
                "the reply to play to its end",
            )
            assert await browsing.bubbles("user") == [QUESTION]
            assert await browsing.bubbles("model") == ["It is noon."]
            playback = stats["playback"]
            # Every reply sample reached the audio graph, resampled to the context rate, without a gap.
            assert abs(playback["received"] - frames_for(stats, 1.5)) <= 2
            assert playback["played"] == playback["received"]
            assert playback["underruns"] == 0 and playback["flushed"] == 0
            assert stats["micSettings"]["echoCancellation"] and stats["micSettings"]["noiseSuppression"]
            assert await browsing.page.inner_text("#status-text") == "Connected"
            assert browsing.outside_requests(origin) == []
            assert browsing.errors == []
    backend.check()

    setup = backend.sessions[0].request.setup
    assert setup.input_audio_transcription is not None and setup.output_audio_transcription is not None
    assert setup.session_resumption is not None
    assert {d.name for d in setup.function_declarations()} == {"get_local_time", "show_note"}
    assert setup.response_modalities() == ["AUDIO"]
    # The microphone reached the server as 16 kHz speech as long as the spoken file's.
    with wave.open(str(question_wav)) as wav:
        spoken = voiced_seconds(wav.readframes(wav.getnframes()))
    assert abs(voiced_seconds(heard[0]) - spoken) < 0.25, (voiced_seconds(heard[0]), spoken)


async def test_barge_in_flushes_playback_and_mute_ends_the_audio_stream(
    live_server: ServerFactory, question_wav: Path
) -> None:
    received: list[object] = []

    async def script(session: ScriptedSession) -> None:
        await utterance(session)
        session.emit(ServerMessage.input_transcript(QUESTION, True), ServerMessage.output_transcript("Once upon"))
        await speak(session, tone(8.0))  # a long reply, all queued in the page
        while not isinstance(event := await next_event(session), AudioStreamEnd):
            received.append(event)
        received.append(event)
        await utterance(session)  # the user talks over the reply
        session.emit(ServerMessage.interrupted_turn(), ServerMessage.turn_done())
        await answer(session, reply_s=0.5)
        await session.closed.wait()

    backend = ScriptedBackend(script)
    async with live_server(backend, static_dir=WEB) as server:
        async with chromium(f"http://127.0.0.1:{server.port}/", microphone=question_wav) as browsing:
            await start_talking(browsing)
            before = await browsing.wait_for_stats(
                lambda s: s["playback"]["played"] > frames_for(s, 0.3), "the long reply to start playing"
            )
            assert before["playback"]["playing"]
            await browsing.restart_microphone()  # mute (audioStreamEnd), unmute: the question again
            await browsing.page.locator("#log .message.model[data-final]", has_text="It is noon.").wait_for()
            stats = await browsing.wait_for_stats(
                lambda s: s["playback"]["played"] + s["playback"]["flushed"] == s["playback"]["received"],
                "the answer after the interruption to play out",
            )
            playback = stats["playback"]
            # The 8 s reply stopped early: what was not played was dropped at once, not played later.
            assert playback["flushes"] == 1
            assert playback["flushed"] > frames_for(stats, 1.0)
            assert playback["played"] < frames_for(stats, 8.0)
            interrupted = browsing.page.locator("#log .message.model[data-interrupted] .text")
            assert await interrupted.all_inner_texts() == ["Once upon"]
            assert (await browsing.bubbles("model"))[-1] == "It is noon."
            assert browsing.errors == []
    backend.check()
    assert isinstance(received[-1], AudioStreamEnd)


async def test_typed_text_tool_calls_camera_and_screen(live_server: ServerFactory) -> None:
    responses: list[ToolResponses] = []
    frames: list[VideoFrame] = []

    async def script(session: ScriptedSession) -> None:
        typed = await session.expect(TextInput)
        assert typed.text == "What time is it here? Write it down."
        session.emit(ServerMessage.calls([FunctionCall(id="t1", name="get_local_time", args={})]))
        responses.append(await session.expect(ToolResponses))
        note = {"title": "Time", "text": "It is noon.\nLunch time."}
        session.emit(ServerMessage.calls([FunctionCall(id="t2", name="show_note", args=note)]))
        responses.append(await session.expect(ToolResponses))
        session.emit(ServerMessage.output_transcript("I wrote it down."), ServerMessage.turn_done())
        while True:
            event = await next_event(session, timeout=30)
            if isinstance(event, VideoFrame):
                frames.append(event)

    backend = ScriptedBackend(script)
    async with live_server(backend, static_dir=WEB) as server:
        async with chromium(f"http://127.0.0.1:{server.port}/", viewport=DESKTOP) as browsing:
            page = browsing.page
            await page.fill("#text-input", "What time is it here? Write it down.")
            await page.press("#text-input", "Enter")  # typing before Start starts the conversation
            await browsing.wait_for_stats(lambda s: s["handle"], "the typed turn to finish")
            assert await browsing.bubbles("user") == ["What time is it here? Write it down."]
            assert await browsing.bubbles("model") == ["I wrote it down."]
            tools = page.locator("#log .tool")
            assert await tools.evaluate_all("items => items.map(i => [i.dataset.name, i.dataset.state])") == [
                ["get_local_time", "done"],
                ["show_note", "done"],
            ]
            assert await page.locator("#log .note strong").inner_text() == "Time"
            assert await page.locator("#log .note p").inner_text() == "It is noon.\nLunch time."

            await page.click("#camera")
            camera = await browsing.wait_for_stats(lambda s: s["video"]["sent"] >= 1, "a camera frame")
            assert camera["video"]["source"] == "camera"
            await page.click("#screen")
            screen = await browsing.wait_for_stats(
                lambda s: s["video"]["source"] == "screen" and s["video"]["sent"] > camera["video"]["sent"],
                "a screen frame",
            )
            # A screen that does not change is not sent again.
            await browsing.wait_for_stats(lambda s: s["video"]["skipped"] >= 1, "an unchanged screen frame skipped")
            assert await page.get_attribute("#camera", "aria-pressed") == "false"
            assert await page.get_attribute("#screen", "aria-pressed") == "true"
            await page.click("#screen")
            assert (await browsing.stats())["video"]["source"] is None
            assert browsing.errors == []
    backend.check()

    time_response, note_response = (r.responses[0] for r in responses)
    assert (time_response.id, time_response.name) == ("t1", "get_local_time")
    assert time_response.response is not None
    local = time_response.response["output"]
    assert local["time_zone"] and local["utc_offset"][0] in "+-" and local["iso"].endswith("Z")
    assert (note_response.id, note_response.response) == ("t2", {"output": "shown"})
    assert len(frames) >= screen["video"]["sent"] - 1
    for frame in frames:
        assert frame.mime_type == "image/jpeg"
        width, height = jpeg_size(frame.image)
        assert max(width, height) <= 1024
    # The fake camera and the screen are both 16:9 and larger than 1024 wide: scaled, not cropped.
    assert {jpeg_size(frame.image) for frame in frames} == {(1024, 576)}


def heard_seconds(session: ScriptedSession) -> float:
    """Seconds of voiced audio the backend session has received so far."""
    return voiced_seconds(b"".join(event.pcm for event in session.received if isinstance(event, AudioChunk)))


async def test_push_to_talk_voice_and_instructions_apply_on_a_resumed_connection(
    live_server: ServerFactory, tmp_path: Path
) -> None:
    question = spoken_wav("what time is it", tmp_path / "late-question.wav", lead_s=2.0)
    held: list[object] = []

    async def script(session: ScriptedSession) -> None:
        if not session.request.history:  # the first connection: one typed turn
            await session.expect(TextInput)
            session.emit(ServerMessage.output_transcript("Hello."), ServerMessage.turn_done())
            await session.closed.wait()
            return
        # The resumed connection, with the new settings. No audio before the button is held.
        held.append(await session.expect(ActivityStart, skip_audio=False))
        while not isinstance(event := await next_event(session), ActivityEnd):
            assert isinstance(event, AudioChunk)
        held.append(event)
        await answer(session, reply_s=0.3)
        await session.closed.wait()

    backend = ScriptedBackend(script)
    async with live_server(backend, static_dir=WEB) as server:
        async with chromium(f"http://127.0.0.1:{server.port}/", microphone=question) as browsing:
            page = browsing.page
            await start_talking(browsing)
            await page.fill("#text-input", "Hi")
            await page.press("#text-input", "Enter")
            first = await browsing.wait_for_stats(lambda s: s["handle"], "the first turn")

            await page.click("#open-settings")
            await page.select_option("#voice", "Kore")
            await page.fill("#system-instruction", "Answer in French.")
            await page.check("#push-to-talk")
            await page.click("#save-settings")
            await browsing.wait_for_stats(
                lambda s: s["state"] == "open" and s["sessionId"] != first["sessionId"], "the resumed connection"
            )
            assert await page.is_visible("#talk")

            await browsing.restart_microphone()  # the question plays again, after 2 s of silence
            await page.hover("#talk")
            await page.mouse.down()
            resumed = backend.sessions[-1]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15
            while heard_seconds(resumed) < 0.6:  # hold until the question has been said
                assert loop.time() < deadline, "the held button never sent the question"
                await asyncio.sleep(0.05)
            await page.mouse.up()
            await browsing.wait_for_stats(lambda s: s["playback"]["played"] > 0, "the push-to-talk reply")
            assert browsing.errors == []
    backend.check()

    first_setup, second_setup = (session.request.setup for session in backend.sessions)
    assert first_setup.realtime_input_config.automatic_activity_detection.disabled is False  # type: ignore[union-attr]
    assert second_setup.voice_name() == "Kore"
    assert second_setup.system_instruction is not None
    assert second_setup.system_instruction.text() == "Answer in French."
    assert second_setup.realtime_input_config.automatic_activity_detection.disabled is True  # type: ignore[union-attr]
    assert [turn.text() for turn in backend.sessions[1].request.history] == ["Hi", "Hello."]
    assert [type(event) for event in held] == [ActivityStart, ActivityEnd]


class RestartingServer:
    """A ``LiveServer`` that can stop and start again on the same port, as a restarted server does."""

    def __init__(self) -> None:
        self.server: LiveServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    async def start(self, backend: ScriptedBackend, store: ResumptionStore) -> None:
        self.server = LiveServer(ServerConfig(port=self.port, static_dir=WEB), backend, store=store)
        await self.server.start()
        self.port = self.server.port

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()  # closes every connection with 1001 and the store
            self.server = None


@pytest.fixture
async def restarting() -> AsyncIterator[RestartingServer]:
    server = RestartingServer()
    try:
        yield server
    finally:
        await server.stop()


async def test_reconnects_after_a_server_restart_and_resumes_the_conversation(
    restarting: RestartingServer, tmp_path: Path, question_wav: Path
) -> None:
    database = tmp_path / "sessions.sqlite3"
    resumed_history: list[list[str]] = []

    async def before_restart(session: ScriptedSession) -> None:
        await utterance(session)
        await answer(session, reply_s=0.5)
        await session.closed.wait()

    async def after_restart(session: ScriptedSession) -> None:
        resumed_history.append([turn.text() for turn in session.request.history])
        typed = await session.expect(TextInput)
        session.emit(ServerMessage.output_transcript(f"You asked: {session.request.history[0].text()}"))
        session.emit(ServerMessage.turn_done())
        assert typed.text == "What did I ask?"
        await session.closed.wait()

    first_backend, second_backend = ScriptedBackend(before_restart), ScriptedBackend(after_restart)
    await restarting.start(first_backend, SqliteResumptionStore(database))
    async with chromium(restarting.url, microphone=question_wav) as browsing:
        await start_talking(browsing)
        before = await browsing.wait_for_stats(
            lambda s: s["handle"] and not s["playback"]["playing"] and s["playback"]["played"], "the first turn"
        )
        await restarting.stop()
        await browsing.wait_for_stats(lambda s: s["state"] == "reconnecting", "the page to notice")
        await restarting.start(second_backend, SqliteResumptionStore(database))
        await browsing.wait_for_stats(
            lambda s: s["state"] == "open" and s["sessionId"] != before["sessionId"], "the page to reconnect"
        )
        page = browsing.page
        assert await page.locator("#log .event").all_inner_texts() == ["Reconnected; the conversation continues."]
        await page.fill("#text-input", "What did I ask?")
        await page.press("#text-input", "Enter")
        await page.locator("#log .message.model").nth(1).wait_for()
        await browsing.wait_for_stats(lambda s: s["handle"] != before["handle"], "the second turn's handle")
        assert await browsing.bubbles("model") == ["It is noon.", f"You asked: {QUESTION}"]
    first_backend.check()
    second_backend.check()
    assert resumed_history == [[QUESTION, "It is noon."]]


async def test_a_server_that_forgot_the_conversation_gets_a_new_one(restarting: RestartingServer) -> None:
    async def chat(session: ScriptedSession) -> None:
        await session.expect(TextInput)
        session.emit(ServerMessage.output_transcript("Hello."), ServerMessage.turn_done())
        await session.closed.wait()

    second_backend = ScriptedBackend(idle)
    await restarting.start(ScriptedBackend(chat), MemoryResumptionStore())
    async with chromium(restarting.url) as browsing:
        await start_talking(browsing)
        await browsing.page.fill("#text-input", "Hi")
        await browsing.page.press("#text-input", "Enter")
        before = await browsing.wait_for_stats(lambda s: s["handle"], "the first turn's handle")
        await restarting.stop()
        await browsing.wait_for_stats(lambda s: s["state"] == "reconnecting", "the page to notice")
        await restarting.start(second_backend, MemoryResumptionStore())  # handles kept in memory are gone
        await browsing.wait_for_stats(
            lambda s: s["state"] == "open" and s["sessionId"] != before["sessionId"] and s["handle"] is None,
            "a new conversation",
        )
        assert await browsing.page.locator("#log .event").all_inner_texts() == [
            "The server no longer knows the previous conversation; starting a new one.",
            "Reconnected as a new conversation.",
        ]
        assert browsing.errors == []
    # The server refused the stale handle (1007) before opening a backend session; the retry opened one.
    assert [session.request.history for session in second_backend.sessions] == [[]]


async def test_go_away_moves_to_a_new_connection_once_the_turn_has_a_handle(live_server: ServerFactory) -> None:
    async def script(session: ScriptedSession) -> None:
        if session.request.history:  # the connection the page moved to
            await session.closed.wait()
            return
        await session.expect(TextInput)
        # goAway mid-turn: moving now would lose this turn, so the page waits for its handle.
        session.emit(ServerMessage(go_away=GoAway(time_left="50s")))
        session.emit(ServerMessage.output_transcript("Hello."), ServerMessage.turn_done())
        await session.closed.wait()

    backend = ScriptedBackend(script)
    async with live_server(backend, static_dir=WEB) as server:
        async with chromium(f"http://127.0.0.1:{server.port}/") as browsing:
            await start_talking(browsing)
            first = await browsing.stats()
            await browsing.page.fill("#text-input", "Hi")
            await browsing.page.press("#text-input", "Enter")
            await browsing.wait_for_stats(
                lambda s: s["state"] == "open" and s["sessionId"] != first["sessionId"], "the move to a new connection"
            )
            assert browsing.errors == []
    backend.check()
    assert len(backend.sessions) == 2
    assert [turn.text() for turn in backend.sessions[1].request.history] == ["Hi", "Hello."]
    assert backend.sessions[0].closed.is_set()
