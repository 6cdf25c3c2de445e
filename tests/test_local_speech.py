"""Playback pacing and what the user heard before a barge-in, on an injected clock (and on virtual time)."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from assistant.backends.local.conversation import Say
from assistant.backends.local.speech import CHUNK_S, PLAYOUT_LEAD_S, PlayoutClock, SpokenRecord, trim_leading_silence
from assistant.protocol import OUTPUT_AUDIO_RATE, ReplyAudio, TextInput, TurnComplete
from audio.files import loop_time
from tests.support.virtual_time import virtual_time
from tests.test_local_parity import ScriptedDialogue, executor, open_session

__all__ = ["executor"]  # the fixture this module uses from the parity tests


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


class ToneVoice:
    """Speaks every piece as 1.5 s of a loud tone (nothing for ``trim_leading_silence`` to cut)."""

    name = "tone"
    sample_rate = OUTPUT_AUDIO_RATE
    piece_s = 1.5

    def synthesize(self, text: str) -> np.ndarray:
        samples = int(self.piece_s * self.sample_rate)
        return (8000 * np.sin(np.arange(samples) * 0.05)).astype(np.int16)


@virtual_time
async def test_a_spoken_reply_stays_at_most_the_lead_ahead_of_playback(executor: ThreadPoolExecutor) -> None:
    """Four sentences (6 s of audio) go out as the client plays them, and the turn ends as playback does."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(seconds)

    script = [Say("One two three. Four five six. Seven eight nine. Ten eleven twelve.")]
    session = open_session(
        executor,
        ScriptedDialogue([script]),
        {"generationConfig": {"responseModalities": ["AUDIO"]}},
        voice=ToneVoice(),
        clock=loop_time,
        sleep=sleep,
    )
    real_start = time.monotonic()
    await session.send(TextInput("count to twelve"))
    played_until: float | None = None  # where the client's playback ends, playing audio as it arrives
    started = sent = 0.0
    leads: list[float] = []
    async for event in session.receive():
        now = loop_time()
        if isinstance(event, ReplyAudio):
            if played_until is None:
                started = now
            played_until = max(played_until or now, now) + event.duration_s
            sent += event.duration_s
            leads.append(played_until - now)
        if isinstance(event, TurnComplete):
            break
    ended = loop_time()
    await session.close()
    assert sent == pytest.approx(4 * ToneVoice.piece_s)
    assert max(leads) <= PLAYOUT_LEAD_S + CHUNK_S + 1e-6  # a chunk goes out once the lead has room for it
    assert ended - started == pytest.approx(sent, abs=0.05)  # the turn ends when playback does, not before
    assert sum(slept) == pytest.approx(sent, abs=0.05)  # the pacing and the wait for playback: the injected sleep
    assert time.monotonic() - real_start < sent / 2  # and took no real time
