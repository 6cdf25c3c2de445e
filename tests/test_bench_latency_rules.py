"""``assistant bench latency``'s own rules: where a paused prompt is split, and what ended a turn (no models)."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.bench.latency import PAUSE_S, Prompt, end_rule, paused_prompt
from assistant.bench.report import BenchUnavailable
from assistant.bench.speech import spoken_prompt

RATE = 16_000


class TwoBursts:
    """A voice that says anything as 0.5 s of sound, 40 ms of near silence, and 0.5 s of sound."""

    name = "bursts"
    sample_rate = RATE

    def synthesize(self, text: str) -> np.ndarray:
        loud = (np.sign(np.sin(np.arange(RATE // 2) * 0.3)) * 8000).astype(np.int16)
        gap = np.full(640, 20, dtype=np.int16)
        return np.concatenate([loud, gap, loud])


def test_a_paused_prompt_is_split_in_the_quiet_before_the_aligned_word_end_and_gets_the_pause() -> None:
    prompt = Prompt("Set a timer", "set_timer", then="for five minutes.")
    # the recogniser puts the end of "timer" a little late, 30 ms after the gap begins
    first, rest = paused_prompt(prompt, TwoBursts(), lambda audio, text: [0.2, 0.35, 0.53, 0.8, 0.9, 1.0, 1.04])
    first_audio = np.frombuffer(first, dtype="<i2")
    rest_audio = np.frombuffer(rest, dtype="<i2")
    assert RATE // 2 <= len(first_audio) <= RATE // 2 + 640  # cut inside the gap, the first burst whole
    pause = int(PAUSE_S * RATE)
    whole = spoken_prompt("Set a timer for five minutes.", TwoBursts())
    assert not rest_audio[:pause].any() and first + rest[pause * 2 :] == whole


def test_a_prompt_that_cannot_be_aligned_is_not_measured() -> None:
    with pytest.raises(BenchUnavailable, match="could not align"):
        paused_prompt(Prompt("Set a timer", "set_timer", then="now."), TwoBursts(), lambda audio, text: [0.2])


def test_the_end_rule_counts_only_what_came_before_the_end_of_the_turn() -> None:
    assert end_rule({"turn_end": 1.0, "words_complete": 0.8, "voice_finished": 0.7}) == "words+voice"
    assert end_rule({"turn_end": 1.0, "words_complete": 0.8, "voice_finished": 1.2}) == "words"
    assert end_rule({"turn_end": 1.0, "voice_finished": 0.7}) == "silence"
    assert end_rule({"turn_end": 1.0}) == "silence"
