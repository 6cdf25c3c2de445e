"""The local stack end to end: spoken questions from the google-genai SDK over TLS.

Questions are spoken at test time (espeak-ng, and the Piper voice as a second
speaker), streamed in real time as 20 ms chunks with silence after them, as
a microphone would. Everything runs offline (HF_HUB_OFFLINE=1): Silero VAD,
Whisper tiny.en, the MiniLM router, SmolLM2 and Piper from their packages.
The reply audio is transcribed back with the same Whisper and compared with
the output transcription the server sent alongside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from google import genai
from google.genai import types

from assistant.backends.local import LocalBackend, LocalConfig
from assistant.backends.local.asr import WhisperRecognizer
from assistant.backends.local.tts import EspeakVoice, PiperVoice, resolve_piper_voice
from assistant.bench.speech import Microphone, Utterance, spoken_prompt
from assistant.protocol import FunctionCall, FunctionDeclaration, FunctionResponse
from assistant.session import Backend, BackendStream, SessionRequest
from assistant.session.tools import ToolContext
from audio.resample import resample
from tests.conftest import Certificate, ServerFactory

pytestmark = pytest.mark.slow

TIME_OUTPUT = {"iso": "2026-11-28T15:42:07+00:00", "time": "3:42 PM", "date": "Saturday, 28 November 2026"}
GET_TIME = types.FunctionDeclaration(name="get_current_time", description="The current time.")
CALCULATE = types.FunctionDeclaration(
    name="calculate",
    description="Evaluate arithmetic.",
    parameters=types.Schema(
        type=types.Type.OBJECT, properties={"expression": types.Schema(type=types.Type.STRING)}, required=["expression"]
    ),
)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def espeak() -> EspeakVoice:
    return EspeakVoice(words_per_minute=160)


@pytest.fixture(scope="module")
def piper() -> Iterator[PiperVoice]:
    voice = PiperVoice(resolve_piper_voice("joe"))
    yield voice
    voice.close()


@pytest.fixture(scope="module")
def whisper() -> WhisperRecognizer:
    return WhisperRecognizer()


class SharedBackend(Backend):
    """One loaded local stack for every server in this module (servers close backends on stop)."""

    name = "local"

    def __init__(self, inner: LocalBackend) -> None:
        self.inner = inner

    async def start(self) -> None:
        await self.inner.start()

    async def open(self, request: SessionRequest) -> BackendStream:
        return await self.inner.open(request)


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalBackend]:
    backend = LocalBackend(LocalConfig())
    yield backend
    asyncio.run(backend.aclose())


def sdk_client(port: int, certificate: Certificate) -> genai.Client:
    return genai.Client(
        api_key="local",
        http_options=types.HttpOptions(
            base_url=f"https://127.0.0.1:{port}",
            api_version="v1beta",
            async_client_args={"ssl": certificate.client_context()},
        ),
    )


def audio_config(**overrides: Any) -> types.LiveConnectConfig:
    config: dict[str, Any] = {
        "response_modalities": [types.Modality.AUDIO],
        "speech_config": types.SpeechConfig(
            voice_config=types.VoiceConfig(prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name="Kore"))
        ),
        "input_audio_transcription": types.AudioTranscriptionConfig(),
        "output_audio_transcription": types.AudioTranscriptionConfig(),
        "tools": [types.Tool(function_declarations=[GET_TIME, CALCULATE])],
    }
    config.update(overrides)
    return types.LiveConnectConfig(**config)


@dataclass
class Heard:
    """Everything one client saw, with the time each message arrived."""

    messages: list[tuple[float, types.LiveServerMessage]] = field(default_factory=list)

    def since(self, start: int = 0) -> list[types.LiveServerMessage]:
        return [message for _, message in self.messages[start:]]


class Conversation:
    """A live SDK session with a microphone task and a reader that answers tool calls."""

    def __init__(self, session: Any, answers: dict[str, dict[str, Any]]) -> None:
        self.session = session
        self.answers = answers
        self.heard = Heard()
        self.turns_done = 0
        self.microphone = Microphone(self._send)
        self._changed = asyncio.Event()

    async def _send(self, chunk: bytes) -> None:
        await self.session.send_realtime_input(audio=types.Blob(data=chunk, mime_type="audio/pcm;rate=16000"))

    async def _read(self) -> None:
        while True:
            async for message in self.session.receive():
                self.heard.messages.append((time.monotonic(), message))
                if message.tool_call:
                    responses = [
                        types.FunctionResponse(id=call.id, name=call.name, response=self.answers[call.name])
                        for call in message.tool_call.function_calls or []
                        if call.name in self.answers  # others stay unanswered, as a slow tool's would
                    ]
                    if responses:
                        await self.session.send_tool_response(function_responses=responses)
                if message.server_content and message.server_content.turn_complete:
                    self.turns_done += 1
                self._changed.set()

    async def until(self, condition: Any, timeout: float = 90.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Conversation]:
        tasks = [asyncio.create_task(self.microphone.run()), asyncio.create_task(self._read())]
        try:
            yield self
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def ask(self, pcm: bytes, turns: int = 1) -> tuple[Utterance, list[types.LiveServerMessage]]:
        """Say ``pcm`` and wait for ``turns`` more turnCompletes; the messages of those turns."""
        start, target = len(self.heard.messages), self.turns_done + turns
        utterance = await self.microphone.say(pcm)
        await self.until(lambda: self.turns_done >= target)
        return utterance, self.heard.since(start)


def transcript(messages: list[types.LiveServerMessage], kind: str) -> str:
    parts = []
    for message in messages:
        content = message.server_content
        transcription = getattr(content, kind, None) if content else None
        if transcription is not None and transcription.text:
            parts.append(transcription.text)
    return "".join(parts)


def reply_audio(messages: list[types.LiveServerMessage]) -> bytes:
    pcm = b""
    for message in messages:
        turn = message.server_content.model_turn if message.server_content else None
        for part in turn.parts or [] if turn else []:
            if part.inline_data is not None:
                assert part.inline_data.mime_type == "audio/pcm;rate=24000"
                pcm += part.inline_data.data or b""
    return pcm


def alphanumerics(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def assert_speech_matches(whisper: WhisperRecognizer, pcm24: bytes, said: str) -> None:
    """The reply audio, transcribed back, says what the output transcription says."""
    audio16 = np.frombuffer(resample(pcm24, 24_000, 16_000), dtype="<i2").astype(np.float32) / 32768
    heard = whisper.transcribe(audio16)
    # No autojunk: in texts over 200 characters it would drop every common letter from the comparison.
    similarity = difflib.SequenceMatcher(None, alphanumerics(heard), alphanumerics(said), autojunk=False).ratio()
    assert similarity >= 0.85, f"the reply audio says {heard!r}, its transcription {said!r}"


@contextlib.contextmanager
def serve_local(certificate: Certificate, *options: str) -> Iterator[int]:
    """``assistant serve --backend local [options]`` in a subprocess; yields its port once the models are loaded."""
    command = [
        sys.executable, "-m", "assistant", "serve", "--backend", "local", "--port", "0",
        "--tls-cert", str(certificate.cert), "--tls-key", str(certificate.key), "--resumption-store", "memory",
        *options,
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stderr is not None
        port = None
        lines = []
        for line in process.stderr:
            lines.append(line)
            if match := re.search(r"Live endpoint\s+wss://127\.0\.0\.1:(\d+)/", line):
                port = int(match.group(1))
                break
        assert port is not None, "".join(lines[-20:])
        # keep reading the log, so a full pipe never blocks the server
        threading.Thread(target=lines.extend, args=(process.stderr,), daemon=True).start()
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


async def test_spoken_questions_through_assistant_serve(
    tls_certificate: Certificate, espeak: EspeakVoice, piper: PiperVoice, whisper: WhisperRecognizer
) -> None:
    time_question = spoken_prompt("Could you tell me what time it is right now, please?", espeak)
    sum_question = spoken_prompt("What's twelve times seven?", piper)
    answers = {
        "get_current_time": {"output": TIME_OUTPUT},
        "calculate": {"output": {"expression": "12*7", "result": 84}},
    }
    with serve_local(tls_certificate) as port:
        client = sdk_client(port, tls_certificate)
        async with client.aio.live.connect(model="gemini-live-2.5-flash", config=audio_config()) as session:
            async with Conversation(session, answers).running() as talk:
                _, first = await talk.ask(time_question)
                _, second = await talk.ask(sum_question)

    inputs = [
        m.server_content.input_transcription for m in first if m.server_content and m.server_content.input_transcription
    ]
    assert len([t for t in inputs if not t.finished]) >= 1, "no partial transcription while the user spoke"
    assert inputs[-1].finished
    heard = "".join(t.text or "" for t in inputs).lower()
    assert "tell me" in heard and "time" in heard
    activity = [m.voice_activity for m in first if m.voice_activity]  # Silero's verdicts, as Gemini sends its own
    kinds = [a.voice_activity_type for a in activity]
    assert kinds == [types.VoiceActivityType.ACTIVITY_START, types.VoiceActivityType.ACTIVITY_END]
    start, end = (float((a.audio_offset or "").removesuffix("s")) for a in activity)
    assert 1.0 < end - start < 8.0, f"speech from {start} s to {end} s"
    [call] = [c for m in first if m.tool_call for c in m.tool_call.function_calls or []]
    assert call.name == "get_current_time" and call.id
    said = transcript(first, "output_transcription")
    assert said.strip() == "It's 3:42 PM."
    assert_speech_matches(whisper, reply_audio(first), said)

    assert "12 times 7" in transcript(second, "input_transcription")
    [call] = [c for m in second if m.tool_call for c in m.tool_call.function_calls or []]
    assert (call.name, call.args) == ("calculate", {"expression": "12*7"})
    said = transcript(second, "output_transcription")
    assert said.strip() == "12 times 7 is 84."
    assert_speech_matches(whisper, reply_audio(second), said)


async def test_barge_in_stops_the_reply_at_once(
    live_server: ServerFactory, tls_certificate: Certificate, local_stack: LocalBackend, espeak: EspeakVoice
) -> None:
    story = spoken_prompt("Tell me a long story about a brave knight and a dragon.", espeak)
    interruption = spoken_prompt("Stop. What time is it?", espeak)
    config = audio_config(system_instruction="You tell long, detailed stories.", max_output_tokens=200, temperature=0.7)
    async with live_server(
        SharedBackend(local_stack), tls_cert=tls_certificate.cert, tls_key=tls_certificate.key
    ) as server:
        client = sdk_client(server.port, tls_certificate)
        async with client.aio.live.connect(model="local", config=config) as session:
            async with Conversation(session, {"get_current_time": {"output": TIME_OUTPUT}}).running() as talk:
                talk.microphone.say(story)
                await talk.until(lambda: bool(reply_audio(talk.heard.since())))
                await asyncio.sleep(0.6)
                start = len(talk.heard.messages)
                utterance, _ = await talk.ask(interruption, turns=2)  # the interrupted turn, then the answer
                timed = talk.heard.messages[start:]

    interrupted_at = next(at for at, m in timed if m.server_content and m.server_content.interrupted)
    assert interrupted_at - utterance.started <= 0.3, (
        f"interrupted {interrupted_at - utterance.started:.3f} s after onset"
    )
    after = [m for at, m in timed if at >= interrupted_at]
    closing = next(i for i, m in enumerate(after) if m.server_content and m.server_content.turn_complete)
    assert not reply_audio(after[: closing + 1]), "reply audio after interrupted"
    rest = after[closing + 1 :]
    first_call = next(i for i, m in enumerate(rest) if m.tool_call)
    assert not reply_audio(rest[:first_call]), "audio of the interrupted turn arrived after it ended"
    assert "time" in transcript(rest, "input_transcription").lower()
    assert transcript(rest, "output_transcription").strip() == "It's 3:42 PM."


class TimerTools:
    """The ``set_timer`` server tool as the tool contract describes it (this test's own)."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[None]] = []

    def declarations(self) -> list[FunctionDeclaration]:
        return [
            FunctionDeclaration(
                name="set_timer",
                parameters={"type": "OBJECT", "properties": {"seconds": {"type": "NUMBER"}}, "required": ["seconds"]},
                behavior="NON_BLOCKING",
            )
        ]

    def handles(self, name: str) -> bool:
        return name == "set_timer"

    def read_only(self, name: str) -> bool:
        return False  # setting a timer changes something

    async def call(self, call: FunctionCall, context: ToolContext) -> FunctionResponse:
        label = call.args.get("label", "timer")

        async def fire() -> None:
            await asyncio.sleep(float(call.args["seconds"]))
            fired = {"output": {"status": "fired", "label": label}}
            await context.send_response(
                FunctionResponse(id=call.id, name=call.name, response=fired, scheduling="INTERRUPT")
            )

        self.tasks.append(asyncio.create_task(fire()))
        started = {"status": "started", "label": label, "seconds": call.args["seconds"]}
        return FunctionResponse(id=call.id, name=call.name, response={"output": started})


async def test_a_timer_set_by_voice_is_announced_when_it_fires(
    live_server: ServerFactory, tls_certificate: Certificate, local_stack: LocalBackend, piper: PiperVoice
) -> None:
    tools = TimerTools()
    question = spoken_prompt("Set a timer for three seconds.", piper)
    async with live_server(
        SharedBackend(local_stack), tls_cert=tls_certificate.cert, tls_key=tls_certificate.key, tools=tools
    ) as server:
        client = sdk_client(server.port, tls_certificate)
        async with client.aio.live.connect(model="local", config=audio_config(tools=[])) as session:
            async with Conversation(session, {}).running() as talk:
                _, messages = await talk.ask(question, turns=2)  # the confirmation, then the alarm
    assert not any(m.tool_call for m in messages), "a server tool's call reached the client"
    ends = [i for i, m in enumerate(messages) if m.server_content and m.server_content.turn_complete]
    confirmation, alarm = messages[: ends[0] + 1], messages[ends[0] + 1 : ends[1] + 1]
    heard = transcript(confirmation, "input_transcription")
    assert transcript(confirmation, "output_transcription") == "A timer is set for 3 seconds.", heard
    assert transcript(alarm, "output_transcription") == "Your timer is done."
    assert reply_audio(confirmation) and reply_audio(alarm)
    for task in tools.tasks:
        task.cancel()


async def test_manual_activity_and_text_replies(
    live_server: ServerFactory, tls_certificate: Certificate, local_stack: LocalBackend, espeak: EspeakVoice
) -> None:
    question = spoken_prompt("What time is it?", espeak)
    manual = audio_config(
        realtime_input_config=types.RealtimeInputConfig(
            automatic_activity_detection=types.AutomaticActivityDetection(disabled=True)
        )
    )
    answers = {
        "get_current_time": {"output": TIME_OUTPUT},
        "calculate": {"output": {"expression": "12*7", "result": 84}},
    }
    async with live_server(
        SharedBackend(local_stack), tls_cert=tls_certificate.cert, tls_key=tls_certificate.key
    ) as server:
        client = sdk_client(server.port, tls_certificate)
        async with client.aio.live.connect(model="local", config=manual) as session:
            async with Conversation(session, answers).running() as talk:
                await session.send_realtime_input(activity_start=types.ActivityStart())
                await talk.microphone.say(question)
                await asyncio.sleep(1.0)  # the user is silent but holds the floor: no reply yet
                assert talk.turns_done == 0
                await session.send_realtime_input(activity_end=types.ActivityEnd())
                await talk.until(lambda: talk.turns_done >= 1)
                spoken = talk.heard.since()
        text_config = types.LiveConnectConfig(
            response_modalities=[types.Modality.TEXT], tools=[types.Tool(function_declarations=[CALCULATE])]
        )
        async with client.aio.live.connect(model="local", config=text_config) as session:
            async with Conversation(session, answers).running() as talk:
                await session.send_realtime_input(text="what's twelve times seven")
                await talk.until(lambda: talk.turns_done >= 1)
                written = talk.heard.since()

    assert transcript(spoken, "input_transcription") == "What time is it?"
    assert transcript(spoken, "output_transcription").strip() == "It's 3:42 PM."
    text = "".join(
        part.text or ""
        for m in written
        if m.server_content and m.server_content.model_turn
        for part in m.server_content.model_turn.parts or []
    )
    assert text.strip() == "12 times 7 is 84."
    assert not reply_audio(written)


async def test_barge_in_cancels_a_pending_tool_call(
    live_server: ServerFactory, tls_certificate: Certificate, local_stack: LocalBackend, espeak: EspeakVoice
) -> None:
    question = spoken_prompt("What time is it?", espeak)
    change_of_mind = spoken_prompt("Never mind that.", espeak)
    server_tls = {"tls_cert": tls_certificate.cert, "tls_key": tls_certificate.key}
    async with live_server(SharedBackend(local_stack), **server_tls) as server:
        client = sdk_client(server.port, tls_certificate)
        async with client.aio.live.connect(model="local", config=audio_config()) as session:
            async with Conversation(session, {}).running() as talk:  # the client never answers the call
                talk.microphone.say(question)
                await talk.until(lambda: any(m.tool_call for m in talk.heard.since()))
                [call] = [c for m in talk.heard.since() if m.tool_call for c in m.tool_call.function_calls or []]
                start = len(talk.heard.messages)
                utterance, _ = await talk.ask(change_of_mind)  # the interrupted turn ends
                timed = talk.heard.messages[start:]

    kinds = [
        "interrupted"
        if m.server_content and m.server_content.interrupted
        else "cancellation"
        if m.tool_call_cancellation
        else "turnComplete"
        if m.server_content and m.server_content.turn_complete
        else "other"
        for _, m in timed
    ]
    assert [kind for kind in kinds if kind != "other"][:3] == ["interrupted", "cancellation", "turnComplete"]
    cancellation = next(m.tool_call_cancellation for _, m in timed if m.tool_call_cancellation)
    assert cancellation.ids == [call.id]
    interrupted_at = next(at for at, m in timed if m.server_content and m.server_content.interrupted)
    assert interrupted_at - utterance.started <= 0.3
