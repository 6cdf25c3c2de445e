"""The wake word gate of `assistant talk` on a virtual clock; the packaged detector and the app on spoken audio.

The app's tests run on virtual time (``tests.support.virtual_time``): its wake window, ticks and "no reply"
timeout read the loop's clock, so seconds of conversation take milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.backends.local.tts import EspeakVoice
from assistant.bench.speech import spoken_prompt
from assistant.cli.talk import talk
from assistant.protocol import AudioChunk, ServerMessage
from audio.pcm import read_wav, write_wav
from audio.wakeword import MicroWakeWordDetector, WakeWordUnavailable, packaged_wake_words, wake_word_name
from client.desktop.app import NoReply
from client.desktop.wake import WakeGate, WakeState
from tests.support.scripted import ScriptedBackend, ScriptedSession, idle
from tests.support.talking import Listener, best_match, reply_messages, spoken_wav, voiced_seconds
from tests.support.virtual_time import virtual_time
from tests.test_talk_client import ANSWER, QUESTION, talk_args

BLOCK_S = 0.02
SILENCE = bytes(640)
WORD = b"\x01\x00" * 320  # the block in which the scripted detector "hears" the word
SPEECH = b"\x02\x00" * 320


class ScriptedDetector:
    """Fires on the ``WORD`` block; counts resets."""

    name = "okay_nabu"
    phrase = "Okay Nabu"

    def __init__(self) -> None:
        self.fed = 0
        self.resets = 0

    def detect(self, pcm: bytes) -> bool:
        self.fed += 1
        return pcm == WORD

    def reset(self) -> None:
        self.resets += 1


class Clock:
    """Virtual time, advanced one microphone block at a time."""

    def __init__(self) -> None:
        self.now = 0.0

    def blocks(self, gate: WakeGate, pcm: bytes, seconds: float, voiced: bool = False) -> list[bool]:
        sent = []
        for _ in range(round(seconds / BLOCK_S)):
            self.now += BLOCK_S
            sent.append(gate.audio(pcm, voiced, self.now))
            gate.tick(self.now)
        return sent


def test_nothing_is_sent_before_the_word_and_the_word_itself_is_not_sent() -> None:
    detector, clock = ScriptedDetector(), Clock()
    gate = WakeGate(detector, command_window_s=8.0, follow_up_s=5.0)
    assert clock.blocks(gate, SPEECH, 30.0, voiced=True) == [False] * 1500, "speech without the word stays here"
    assert detector.fed == 1500
    assert clock.blocks(gate, WORD, BLOCK_S) == [False]
    assert gate.state is WakeState.AWAKE and gate.wakes == 1
    assert all(clock.blocks(gate, SPEECH, 2.0, voiced=True)), "the request after the word streams"
    assert detector.fed == 1501, "the detector rests while the gate is awake"


def test_no_request_after_the_word_falls_asleep_after_the_command_window() -> None:
    detector, clock = ScriptedDetector(), Clock()
    gate = WakeGate(detector, command_window_s=8.0, follow_up_s=5.0)
    clock.blocks(gate, WORD, BLOCK_S)
    woke_at = clock.now
    sent = clock.blocks(gate, SILENCE, 10.0)
    asleep_after = sent.index(False) * BLOCK_S
    assert asleep_after == pytest.approx(8.0, abs=BLOCK_S), "quiet after the word: asleep after the command window"
    assert gate.state is WakeState.ASLEEP and detector.resets == 1, "an old score cannot fire later"
    assert clock.now - woke_at == pytest.approx(10.0)


def test_a_whole_exchange_stays_awake_then_a_follow_up_window() -> None:
    detector, clock = ScriptedDetector(), Clock()
    gate = WakeGate(detector, command_window_s=8.0, follow_up_s=5.0)
    clock.blocks(gate, WORD, BLOCK_S)
    assert all(clock.blocks(gate, SPEECH, 3.0, voiced=True))
    # The user stops; the server works for 4 s, then a 20 s reply plays: activity reported each tick.
    assert all(clock.blocks(gate, SILENCE, 4.0))
    for _ in range(200):
        clock.now += 0.1
        gate.activity(clock.now)
        assert not gate.tick(clock.now)
    # A follow-up within five seconds needs no second word.
    assert all(clock.blocks(gate, SILENCE, 4.0))
    assert all(clock.blocks(gate, SPEECH, 1.0, voiced=True))
    sent = clock.blocks(gate, SILENCE, 6.0)
    assert sent.index(False) * BLOCK_S == pytest.approx(5.0, abs=BLOCK_S)
    assert gate.state is WakeState.ASLEEP


def test_tick_reports_falling_asleep_once_and_activity_does_not_wake_it() -> None:
    gate = WakeGate(ScriptedDetector(), command_window_s=1.0, follow_up_s=1.0)
    gate.activity(0.0)  # a reply to typed text while asleep: the microphone stays here
    assert not gate.awake and not gate.tick(5.0)
    assert not gate.audio(WORD, False, 10.0) and gate.awake
    assert gate.seconds_left(10.5) == pytest.approx(0.5)
    assert [gate.tick(t) for t in (10.5, 11.0, 11.5)] == [False, True, False]
    assert gate.seconds_left(11.5) == 0.0


def test_wake_word_names_are_forgiving_and_an_unknown_one_lists_the_packaged_models() -> None:
    assert wake_word_name("Okay Nabu") == wake_word_name("okay-nabu") == "okay_nabu"
    assert {"okay_nabu", "hey_jarvis", "alexa", "hey_mycroft"} <= set(packaged_wake_words())
    with pytest.raises(WakeWordUnavailable, match="carries: alexa, hey_jarvis, hey_mycroft, okay_nabu"):
        MicroWakeWordDetector("hey siri")


def spoken(text: str, voice: EspeakVoice) -> bytes:
    """``text`` with a second of silence either side, in 20 ms blocks' worth of bytes."""
    return bytes(32_000) + spoken_prompt(text, voice) + bytes(32_000)


def detections(detector: MicroWakeWordDetector, pcm: bytes) -> int:
    return sum(detector.detect(pcm[i : i + 640]) for i in range(0, len(pcm), 640))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["okay_nabu", "hey_mycroft"])
def test_the_packaged_model_hears_its_word_spoken_and_not_an_ordinary_sentence(name: str) -> None:
    voice = EspeakVoice("en-us", words_per_minute=160)
    detector = MicroWakeWordDetector(name)
    assert detections(detector, spoken(detector.phrase, voice)) == 1, "one word, one detection"
    detector.reset()
    sentence = spoken("Okay, what is the weather like in Chennai today? I need a coat.", voice)
    assert detections(detector, sentence) == 0
    scores = MicroWakeWordDetector(name).probabilities(sentence)
    assert len(scores) == pytest.approx(len(sentence) / 2 / 160, abs=3), "one score per 10 ms window"
    assert float(np.max(scores)) < detector.cutoff


@pytest.fixture(scope="module")
def said(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("said")
    question = read_wav(spoken_wav(folder, "question.wav", QUESTION), 16_000)
    word = read_wav(spoken_wav(folder, "word.wav", "Okay Nabu"), 16_000)
    pause = bytes(32_000)
    both = folder / "question-word-question.wav"
    write_wav(both, question + pause + word + pause + question, 16_000)
    answer = spoken_wav(folder, "answer.wav", ANSWER, rate=24_000)
    return {"question": folder / "question.wav", "both": both, "answer": answer}


@pytest.mark.slow
@virtual_time
async def test_talk_with_a_wake_word_sends_only_what_follows_the_word(
    said: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = read_wav(said["answer"], 24_000)
    question = read_wav(said["question"], 16_000)
    heard: list[bytes] = []

    async def script(s: ScriptedSession) -> None:
        heard.append(await Listener(s).utterance())
        s.emit(ServerMessage.input_transcript(QUESTION, finished=True), *reply_messages(answer, ANSWER))
        await s.closed.wait()

    backend = ScriptedBackend(script)
    args = talk_args("--wake-word", "okay nabu", "--input", str(said["both"]), "--output", str(tmp_path / "r.wav"))
    await talk(args, backend=backend)
    backend.check()
    [session] = backend.sessions
    sent = b"".join(event.pcm for event in session.received if isinstance(event, AudioChunk))
    assert voiced_seconds(sent, 16_000) < 1.5 * voiced_seconds(question, 16_000), "one question sent, not two"
    assert best_match(heard[0], question) > 0.9, "the question after the word, intact"
    printed = capsys.readouterr().out
    assert printed.index("[waiting for 'Okay Nabu'") < printed.index("[awake") < printed.index("-- turn 1 done")


@pytest.mark.slow
@virtual_time
async def test_talk_says_when_the_wake_word_was_never_heard(said: dict[str, Path], tmp_path: Path) -> None:
    backend = ScriptedBackend(idle)
    args = talk_args(
        "--wake-word", "okay_nabu", "--input", str(said["question"]), "--output", str(tmp_path / "r.wav"),
        "--reply-timeout", "0.5",
    )  # fmt: skip
    with pytest.raises(NoReply, match="wake word 'Okay Nabu' was not heard in the input, so nothing was sent"):
        await talk(args, backend=backend)
    assert not any(isinstance(event, AudioChunk) for event in backend.sessions[0].received)
