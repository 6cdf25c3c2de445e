"""`assistant talk` end to end without sound hardware: WAV in, WAV out, an in-process session.

On virtual time (``tests.support.virtual_time``): the WAV ends, the app's turn timer and ticker, and the
scripted backend all run on the loop's clock, so a conversation of several seconds takes milliseconds and
its timings (500 ms of silence before a reply, a second of reply before a barge-in) are exact.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import re
import sys
from pathlib import Path

import pytest

from assistant import backends
from assistant.backends import BackendSpec
from assistant.cli import build_parser, main
from assistant.cli.talk import talk
from assistant.protocol import FunctionCall, FunctionDeclaration, FunctionResponse, ServerMessage, ToolResponses
from assistant.session import ToolContext
from audio.pcm import read_wav
from client.desktop.app import NoReply
from tests.support.scripted import ScriptedBackend, ScriptedSession, idle
from tests.support.talking import Listener, best_match, reply_messages, spoken_wav, voiced_seconds
from tests.support.virtual_time import virtual_time

pytestmark = virtual_time

QUESTION = "what time is it"
ANSWER = "It is twelve o'clock noon."


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    folder = tmp_path_factory.mktemp("speech")
    question = spoken_wav(folder, "question.wav", QUESTION)
    answer = read_wav(spoken_wav(folder, "answer.wav", ANSWER, rate=24_000), 24_000)
    return question, answer


def talk_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["talk", "--ui", "plain", "--until", "reply", *argv])


async def test_a_spoken_question_gets_a_spoken_reply_in_the_output_wav(
    speech: tuple[Path, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    question, answer = speech

    async def script(s: ScriptedSession) -> None:
        heard = await Listener(s).utterance()
        assert best_match(heard, read_wav(question, 16_000)) > 0.9, "the backend must hear the question's audio"
        s.emit(ServerMessage.input_transcript(QUESTION, finished=True), *reply_messages(answer, ANSWER))
        await s.closed.wait()

    backend = ScriptedBackend(script)
    output = tmp_path / "reply.wav"
    await talk(talk_args("--input", str(question), "--output", str(output)), backend=backend)
    backend.check()
    written = read_wav(output, 24_000)
    assert best_match(written, answer) > 0.95, "the reply is in the output file, intact"
    printed = capsys.readouterr().out
    assert f"you: {QUESTION}" in printed
    assert f"assistant: {ANSWER}" in printed
    latency = re.search(r"turn 1 done · (\d+) ms to first reply", printed)
    assert latency is not None, printed
    # Counted from the end of the question: the backend waits 500 ms of silence before it answers, and the
    # reply is heard at the speaker's next 20 ms block or so.
    assert 500 <= int(latency.group(1)) <= 560


async def test_interrupted_flushes_the_queued_reply_at_once(
    speech: tuple[Path, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    question, answer = speech
    long_reply = answer * 4  # about 7 s, sent at once as a fast backend does

    async def script(s: ScriptedSession) -> None:
        listener = Listener(s)
        await listener.utterance()
        s.emit(*reply_messages(long_reply, ANSWER)[:-2])
        await listener.listen_for(1.0)
        s.emit(ServerMessage.interrupted_turn(), ServerMessage.turn_done())
        await s.closed.wait()

    backend = ScriptedBackend(script)
    output = tmp_path / "reply.wav"
    await talk(talk_args("--input", str(question), "--output", str(output)), backend=backend)
    backend.check()
    played = voiced_seconds(read_wav(output, 24_000), 24_000)
    # The backend interrupts after one second of listening: that second of the reply (less its quiet moments).
    assert 0.85 <= played <= 1.04, f"{played:.2f} s of the 7 s reply played before the flush"
    assert "turn 1 interrupted" in capsys.readouterr().out


async def test_an_input_nobody_answers_fails_once_the_reply_timeout_has_passed(
    speech: tuple[Path, bytes], tmp_path: Path
) -> None:
    """The app's ticker and its "no reply" clock are the loop's: the waiting takes no real time."""
    question, _ = speech
    backend = ScriptedBackend(idle)
    loop = asyncio.get_running_loop()
    started = loop.time()
    args = talk_args("--input", str(question), "--output", str(tmp_path / "r.wav"), "--reply-timeout", "5")
    with pytest.raises(NoReply, match="no reply within 5 s of the end of the input"):
        await talk(args, backend=backend)
    waited = loop.time() - started - len(read_wav(question, 16_000)) / 32_000
    assert 5.0 <= waited <= 5.3, f"gave up {waited:.2f} s after the input; ticks are 100 ms apart"


class ClockTool:
    """A server-side tool, as the tools registry would provide one."""

    def declarations(self) -> list[FunctionDeclaration]:
        return [FunctionDeclaration(name="get_time", description="the time")]

    def handles(self, name: str) -> bool:
        return name == "get_time"

    def read_only(self, name: str) -> bool:
        return True  # it only reads the clock

    async def call(self, call: FunctionCall, context: ToolContext) -> FunctionResponse:
        return FunctionResponse(id=call.id, name=call.name, response={"time": "12:00"})

    async def aclose(self) -> None:
        """Nothing to stop."""


async def clock_tools(args: object, knowledge: object = None) -> ClockTool:
    return ClockTool()


async def test_server_tool_calls_show_as_they_happen(
    speech: tuple[Path, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    question, answer = speech
    monkeypatch.setattr("assistant.cli.talk.build_tools", clock_tools)

    async def script(s: ScriptedSession) -> None:
        await Listener(s).utterance()
        s.emit(ServerMessage.calls([FunctionCall(id="c1", name="get_time", args={"zone": "UTC"})]))
        [response] = (await s.expect(ToolResponses)).responses
        assert response.response == {"time": "12:00"}
        s.emit(*reply_messages(answer, ANSWER))
        await s.closed.wait()

    backend = ScriptedBackend(script)
    await talk(talk_args("--input", str(question), "--output", str(tmp_path / "r.wav")), backend=backend)
    backend.check()
    printed = capsys.readouterr().out
    assert 'tool get_time({"zone": "UTC"}) …' in printed
    assert re.search(r'tool get_time → \{"time": "12:00"\} in \d+ ms', printed)
    assert printed.index("tool get_time(") < printed.index(f"assistant: {ANSWER}")


def test_a_backend_that_is_not_installed_says_how_to_install_it(
    speech: tuple[Path, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(backends.BACKENDS, "local", BackendSpec("local", "assistant.backends.not_built", "local", "x"))
    status = main(["talk", "--backend", "local", "--input", str(speech[0]), "--output", str(tmp_path / "r.wav")])
    assert status == 2
    assert "pip install 'live-assistant[local]'" in capsys.readouterr().err


def test_an_unreachable_server_is_reported(
    speech: tuple[Path, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str], unused_tcp_port: int
) -> None:
    url = f"ws://127.0.0.1:{unused_tcp_port}/ws/x"
    status = main(["talk", "--connect", url, "--input", str(speech[0]), "--output", str(tmp_path / "r.wav")])
    assert status == 2
    err = capsys.readouterr().err
    assert f"cannot reach {url}" in err and "is `assistant serve` running there?" in err


def test_portaudio_missing_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "pyaudio", None)  # what an interpreter without PyAudio sees
    assert main(["talk", "--list-devices"]) == 2
    err = capsys.readouterr().err
    assert "PyAudio or PortAudio is not installed" in err
    assert "apt-get install libportaudio2 portaudio19-dev" in err and "brew install portaudio" in err


def test_frames_without_the_vision_package_fail_clearly(
    speech: tuple[Path, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "vision.sampler", None)
    status = main(["talk", "--camera", "0", "--input", str(speech[0]), "--output", str(tmp_path / "r.wav")])
    assert status == 2
    assert "camera:0 frames need the vision extra" in capsys.readouterr().err


def test_an_input_that_is_not_a_wav_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bogus = tmp_path / "question.wav"
    bogus.write_bytes(b"not a wav at all")
    assert main(["talk", "--input", str(bogus), "--output", str(tmp_path / "r.wav")]) == 2
    assert "is not a PCM WAV file" in capsys.readouterr().err


async def test_wav_microphone_paces_itself_on_the_loop_clock(speech: tuple[Path, bytes]) -> None:
    from audio.files import WavMicrophone

    received: list[tuple[float, int]] = []
    loop = asyncio.get_running_loop()
    microphone = WavMicrophone(speech[0], lambda pcm, level: received.append((loop.time(), len(pcm))))
    task = asyncio.create_task(microphone.run())
    await microphone.finished.wait()
    task.cancel()
    times = [at for at, _ in received]
    assert sum(size for _, size in received) >= len(microphone.pcm)
    assert [later - earlier for earlier, later in itertools.pairwise(times)] == [pytest.approx(0.02)] * (len(times) - 1)
    assert times[-1] - times[0] >= microphone.duration_s - 0.02, "the whole file, at the pace it was recorded"
