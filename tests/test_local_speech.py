"""Playback pacing and what the user heard before a barge-in, on an injected clock."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.backends.local.speech import PlayoutClock, SpokenRecord, trim_leading_silence


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_playout_follows_real_time_and_restarts_after_an_underrun() -> None:
    clock = Clock()
    playout = PlayoutClock(clock)
    assert playout.ahead() == 0 and playout.played() == 0
    playout.sent(1.0)
    playout.sent(0.5)
    assert playout.ahead() == pytest.approx(1.5)
    clock.now += 0.6
    assert playout.ahead() == pytest.approx(0.9) and playout.played() == pytest.approx(0.6)
    clock.now += 5.0  # the client ran dry; new audio plays as it arrives
    assert playout.ahead() == 0 and playout.played() == pytest.approx(1.5)
    playout.sent(0.2)
    assert playout.ahead() == pytest.approx(0.2)


def test_heard_text_is_whole_pieces_then_a_share_of_words() -> None:
    record = SpokenRecord()
    record.add("One day, ", 0.0, 1.0)
    record.add("a knight rode out to find the dragon.", 1.0, 2.0)
    assert record.heard(0.4) == ""
    assert record.heard(0.5) == "One"
    assert record.heard(1.0) == "One day, "
    assert record.heard(2.0) == "One day, a knight rode out"  # half of the second piece's eight words
    assert record.heard(9.0) == record.text
    assert record.heard(2.0, first=1) == "a knight rode out"


def test_leading_silence_is_trimmed_to_ten_ms() -> None:
    rate = 22_050
    samples = np.concatenate([np.zeros(rate // 2, np.int16), np.full(100, 5000, np.int16)])
    trimmed = trim_leading_silence(samples, rate)
    assert len(trimmed) == 100 + rate // 100
    assert len(trim_leading_silence(np.zeros(50, np.int16), rate)) == 50
