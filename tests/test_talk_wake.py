"""The wake word gate of `assistant talk`, on a virtual clock, and the packaged detector on spoken audio."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.backends.local.tts import EspeakVoice
from assistant.bench.speech import spoken_prompt
from audio.wakeword import MicroWakeWordDetector, WakeWordUnavailable, packaged_wake_words, wake_word_name
from client.desktop.wake import WakeGate, WakeState

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
