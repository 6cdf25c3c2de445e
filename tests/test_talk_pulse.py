"""`assistant talk` through real PyAudio streams on a private PulseAudio server (with and without a wake word).

The client runs as its own process (``--connect``) against a ``LiveServer``
in the test with a scripted backend that listens by energy. The test plays
speech into the virtual microphone and records the virtual speaker.

The echo test routes the speaker back into the microphone (a PulseAudio
loopback at -6 dB, as loud as the user's own voice at the microphone) and
checks, for each ``--echo`` mode, whether the assistant interrupts itself and
whether it hears a real barge-in spoken over its reply; with echo cancellation
it prints the echo removed on this device path.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest

from assistant.protocol import AudioChunk, AudioStreamEnd, ServerMessage
from assistant.server import LiveServer
from audio.pcm import level_dbfs, read_wav, samples_of
from audio.resample import resample
from tests.conftest import ServerFactory
from tests.support.pulse import PulseServer, pulse_server
from tests.support.scripted import ScriptedBackend, ScriptedSession
from tests.support.talking import Listener, best_match, reply_messages, spoken_wav, voiced_seconds

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
QUESTION = "what time is it"
ANSWER = "It is twelve o'clock noon."
LONG_ANSWER = (
    "Here is the forecast for the whole week. Monday will be sunny and warm, with a light breeze from the "
    "south. Tuesday brings clouds in the afternoon and a chance of showers in the evening. Wednesday stays "
    "grey and cool, and Thursday clears again before a windy Friday."
)  # about sixteen seconds: room to barge in after a canceller that is slow to converge on a loaded machine
BARGE_IN = "Stop, stop. Tell me about Saturday instead."
BARGE_IN_AFTER_S = 4.5  # into the reply: past the canceller's two seconds of learning
TRUSTED = "echo canceller trusted"  # the client's log line when it leaves half duplex
WAKE_WORD = "Okay Nabu"


@pytest.fixture(scope="module")
def pulse(tmp_path_factory: pytest.TempPathFactory) -> PulseServer:  # type: ignore[misc]
    with pulse_server(tmp_path_factory.mktemp("pulse")) as server:
        yield server


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("speech")
    return {
        "question": spoken_wav(folder, "question.wav", QUESTION),
        "answer": spoken_wav(folder, "answer.wav", ANSWER, rate=24_000),
        "long_answer": spoken_wav(folder, "long.wav", LONG_ANSWER, rate=24_000),
        "barge_in": spoken_wav(folder, "barge_in.wav", BARGE_IN, voice="en-us+f3"),
        "wake": spoken_wav(folder, "wake.wav", WAKE_WORD),
    }


@contextlib.asynccontextmanager
async def talk_process(pulse: PulseServer, server: LiveServer, *options: str) -> AsyncIterator[list[str]]:
    """Run `assistant talk --connect` with the private sound server; yields its output lines so far."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "assistant", "talk", "--connect", server.live_url, "--ui", "plain", *options,
        cwd=REPO,
        env=pulse.environ,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    lines: list[str] = []

    async def read() -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            lines.append(line.decode(errors="replace").rstrip())

    reader = asyncio.create_task(read())
    try:
        yield lines
    finally:
        if process.returncode is None:
            process.terminate()
        status = await asyncio.wait_for(process.wait(), 15)
        await reader
        assert status == 0, "\n".join(lines)


async def wait_for_microphone(backend: ScriptedBackend, timeout: float = 30.0) -> ScriptedSession:
    """The client's session, once its microphone audio flows."""
    async with asyncio.timeout(timeout):
        while not backend.sessions or not backend.sessions[0].received:
            await asyncio.sleep(0.05)
    return backend.sessions[0]


async def played_to_end(process: subprocess.Popen[bytes]) -> None:
    await asyncio.to_thread(process.wait, 30)


def answering_backend(answer: bytes) -> tuple[ScriptedBackend, list[bytes], asyncio.Event]:
    """A model that records the utterance it hears, answers it with ``answer``, then waits for the close."""
    heard: list[bytes] = []
    replied = asyncio.Event()

    async def script(s: ScriptedSession) -> None:
        heard.append(await Listener(s).utterance())
        s.emit(ServerMessage.input_transcript(QUESTION, finished=True), *reply_messages(answer, ANSWER))
        replied.set()
        await s.closed.wait()

    return ScriptedBackend(script), heard, replied

async def test_a_spoken_question_through_the_microphone_gets_a_spoken_reply_on_the_speaker(
    pulse: PulseServer, speech: dict[str, Path], live_server: ServerFactory, tmp_path: Path
) -> None:
    question = read_wav(speech["question"], 16_000)
    answer = read_wav(speech["answer"], 24_000)
    backend, heard, replied = answering_backend(answer)
    recording = tmp_path / "speaker.raw"
    async with live_server(backend) as server, talk_process(pulse, server) as lines:
        await wait_for_microphone(backend)
        recorder = pulse.record("spk.monitor", recording)
        try:
            await played_to_end(pulse.play(speech["question"], "micfeed"))
            await asyncio.wait_for(replied.wait(), 30)
            async with asyncio.timeout(30):
                while not any(line.startswith("-- turn 1") for line in lines):
                    await asyncio.sleep(0.1)
            await asyncio.sleep(len(answer) / 48_000 + 1.0)  # let the reply play out
        finally:
            recorder.terminate()
            await asyncio.to_thread(recorder.wait, 10)
    backend.check()
    # Pieces of the question, so that one block lost on a busy machine does not hide the rest.
    pieces = [question[i : i + 12_800] for i in range(0, len(question) - 12_800 + 1, 6_400)]
    match = max(best_match(heard[0], piece) for piece in pieces)
    assert match > 0.8, f"the backend heard the question through the microphone ({match:.2f}):\n" + "\n".join(lines)
    recorded = recording.read_bytes()
    assert best_match(recorded, resample(answer, 24_000, 16_000)) > 0.8, "the speaker played the reply"
    assert f"you: {QUESTION}" in lines and f"assistant: {ANSWER}" in lines


@contextlib.contextmanager
def echo_path(pulse: PulseServer, gain: float = 0.5) -> Iterator[None]:
    """Route the speaker into the microphone feed at ``gain`` (0.5: -6 dB), as a laptop's chassis and room do."""
    module = pulse.pactl(
        "load-module", "module-loopback", "source=spk.monitor", "sink=micfeed", "latency_msec=30", "adjust_time=0",
        "source_dont_move=true", "sink_dont_move=true",
    ).strip()  # fmt: skip
    try:
        index = None
        for line in pulse.pactl("list", "sink-inputs").splitlines():
            line = line.strip()
            if line.startswith("Sink Input #"):
                index = line.removeprefix("Sink Input #")
            elif line == f"Owner Module: {module}" and index is not None:
                pulse.pactl("set-sink-input-volume", index, str(gain))
                break
        else:
            raise AssertionError(f"no sink input of loopback module {module}")
        yield
    finally:
        pulse.pactl("unload-module", module)


@pytest.mark.parametrize(
    ("echo", "interrupts_itself", "hears_barge_in"),
    # The gate never interrupts itself; it may hear the user only in the reply's pauses.
    [("cancel", False, True), ("off", True, None), ("gate", False, None)],
)
async def test_echo_of_the_reply_does_not_interrupt_it_but_a_real_barge_in_does(
    pulse: PulseServer,
    speech: dict[str, Path],
    live_server: ServerFactory,
    tmp_path: Path,
    echo: str,
    interrupts_itself: bool,
    hears_barge_in: bool | None,
) -> None:
    long_answer = read_wav(speech["long_answer"], 24_000)
    reply_s = len(long_answer) / 48_000
    reply_started = asyncio.Event()
    outcome: dict[str, float | None] = {}

    async def script(s: ScriptedSession) -> None:
        listener = Listener(s)
        await listener.utterance()
        s.emit(*reply_messages(long_answer, LONG_ANSWER, chunk_ms=200)[:-1])  # a fast backend sends it at once
        started = asyncio.get_running_loop().time()  # the clock of listener.onsets
        outcome["started"] = started
        reply_started.set()
        interrupted = await listener.listen_for(reply_s + 1.0)
        outcome["onset"] = listener.onsets[-1] - started if interrupted else None
        if interrupted:
            s.emit(ServerMessage.interrupted_turn())
        s.emit(ServerMessage.turn_done())
        await s.closed.wait()

    backend = ScriptedBackend(script)
    microphone = tmp_path / "microphone.raw"
    with echo_path(pulse):
        async with (
            live_server(backend) as server,
            talk_process(pulse, server, "--echo", echo, "--log-level", "info") as lines,
        ):
            session = await wait_for_microphone(backend)
            await played_to_end(pulse.play(speech["question"], "micfeed"))
            await asyncio.wait_for(reply_started.wait(), 30)
            recorder = pulse.record("mic", microphone)
            sent_before = len(sent_audio(session))
            try:
                await asyncio.sleep(BARGE_IN_AFTER_S)
                if hears_barge_in:  # full duplex only once the canceller has proved itself; the gate holds till then
                    async with asyncio.timeout(reply_s - BARGE_IN_AFTER_S - 2.0):
                        while not any(TRUSTED in line for line in lines):
                            await asyncio.sleep(0.05)
                barge_in_at = asyncio.get_running_loop().time() - outcome["started"]  # type: ignore[operator]
                await played_to_end(pulse.play(speech["barge_in"], "micfeed"))
                async with asyncio.timeout(30):
                    while not any(line.startswith("-- turn 1") for line in lines):
                        await asyncio.sleep(0.1)
            finally:
                recorder.terminate()
                await asyncio.to_thread(recorder.wait, 10)
    backend.check()
    onset = outcome["onset"]
    if interrupts_itself:
        assert onset is not None and onset < BARGE_IN_AFTER_S, "without echo control the echo sounds like the user"
        return
    assert onset is None or onset >= barge_in_at, (
        f"the assistant interrupted itself at {onset:.2f} s:\n" + "\n".join(lines)
    )
    if hears_barge_in:
        assert onset is not None and onset - barge_in_at < 1.0, "barge-in not heard:\n" + "\n".join(lines)
        assert "-- turn 1 interrupted" in " ".join(lines)
        report_erle(microphone, session, sent_before)


def sent_audio(session: ScriptedSession) -> bytes:
    return b"".join(event.pcm for event in session.received if isinstance(event, AudioChunk))


def report_erle(microphone: Path, session: ScriptedSession, sent_before: int) -> None:
    """Echo removed on the device path: microphone level against what was sent, before the barge-in."""
    sent = sent_audio(session)[sent_before:]
    window = slice(int(2.5 * 16_000) * 2, int(4.3 * 16_000) * 2)  # after learning, before the barge-in
    captured, cleaned = microphone.read_bytes()[window], sent[window]
    erle = level_dbfs(captured) - level_dbfs(cleaned)
    print(
        f"device-path ERLE {erle:.1f} dB (microphone {level_dbfs(captured):.1f} dBFS, sent {level_dbfs(cleaned):.1f})"
    )
    assert samples_of(captured).size and np.abs(samples_of(captured)).max() > 1000, "the echo reached the microphone"
    assert erle > 15


async def test_the_local_backend_hears_the_microphone_and_answers_on_the_speaker(
    pulse: PulseServer, speech: dict[str, Path], tmp_path: Path
) -> None:
    recording = tmp_path / "speaker.raw"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "assistant", "talk", "--backend", "local", "--ui", "plain", "--log-level", "info",
        cwd=REPO,
        env={**pulse.environ, "HF_HUB_OFFLINE": "1"},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    lines: list[str] = []
    recorder = pulse.record("spk.monitor", recording)
    try:
        assert process.stdout is not None
        try:
            async with asyncio.timeout(240):
                await read_until(process.stdout, lines, "[listening")
                await played_to_end(pulse.play(speech["question"], "micfeed"))
                await read_until(process.stdout, lines, "-- turn 1")
        except TimeoutError:
            raise AssertionError("no turn within 240 s:\n" + "\n".join(lines)) from None
        await asyncio.sleep(3.0)  # the reply plays out
    finally:
        recorder.terminate()
        await asyncio.to_thread(recorder.wait, 10)
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)
    assert any(line.startswith("you:") and "time" in line.lower() for line in lines), "\n".join(lines)
    assert voiced_seconds(recording.read_bytes(), 16_000) >= 0.5, "the reply was played on the speaker"


async def read_until(stream: asyncio.StreamReader, lines: list[str], prefix: str) -> None:
    """Read ``stream`` into ``lines`` until one starts with ``prefix``; fails with the output if it ends first."""
    while not any(line.startswith(prefix) for line in lines):
        line = await stream.readline()
        if not line:
            raise AssertionError(f"the client ended before printing {prefix!r}:\n" + "\n".join(lines))
        lines.append(line.decode(errors="replace").rstrip())


async def printed(lines: list[str], prefix: str, after: int = 0, timeout: float = 30.0) -> int:
    """The index of the first line from ``after`` on that starts with ``prefix``, once the client prints it."""
    async with asyncio.timeout(timeout):
        while True:
            for index in range(after, len(lines)):
                if lines[index].startswith(prefix):
                    return index
            await asyncio.sleep(0.05)


async def test_with_a_wake_word_nothing_is_streamed_before_it_and_a_turn_happens_after_it(
    pulse: PulseServer, speech: dict[str, Path], live_server: ServerFactory
) -> None:
    question = read_wav(speech["question"], 16_000)
    backend, heard, replied = answering_backend(read_wav(speech["answer"], 24_000))
    async with (
        live_server(backend) as server,
        talk_process(pulse, server, "--wake-word", "okay_nabu") as lines,
    ):
        waiting = await printed(lines, "[waiting for 'Okay Nabu'")
        await played_to_end(pulse.play(speech["question"], "micfeed"))  # the question without the word
        await asyncio.sleep(1.0)
        [session] = backend.sessions
        assert sent_audio(session) == b"", "nothing leaves the machine before the wake word:\n" + "\n".join(lines)
        await played_to_end(pulse.play(speech["wake"], "micfeed"))
        awake = await printed(lines, "[awake", after=waiting)
        await played_to_end(pulse.play(speech["question"], "micfeed"))
        await asyncio.wait_for(replied.wait(), 30)
        turn = await printed(lines, "-- turn 1", after=awake)
        # The reply plays (about 2 s), then five quiet seconds for a follow-up, then back to waiting.
        await printed(lines, "[waiting for", after=turn, timeout=20)
        await asyncio.sleep(0.5)
    backend.check()
    sent = sent_audio(session)
    pieces = [question[i : i + 12_800] for i in range(0, len(question) - 12_800 + 1, 6_400)]
    match = max(best_match(heard[0], piece) for piece in pieces)
    assert match > 0.8, f"the backend heard the question after the word ({match:.2f}):\n" + "\n".join(lines)
    word = read_wav(speech["wake"], 16_000)
    voiced = voiced_seconds(sent, 16_000)
    assert voiced < voiced_seconds(question, 16_000) + voiced_seconds(word, 16_000) / 2, (
        "the wake word itself stays on this machine"
    )
    ends = [index for index, event in enumerate(session.received) if isinstance(event, AudioStreamEnd)]
    assert len(ends) == 1, "falling asleep ends the audio stream once"
    assert not any(isinstance(event, AudioChunk) for event in session.received[ends[0] :]), "and nothing follows"
    assert f"you: {QUESTION}" in lines and f"assistant: {ANSWER}" in lines
