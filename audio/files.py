"""WAV files standing in for the microphone and the speaker (headless demos, tests).

``WavMicrophone`` streams a file in real time, 20 ms at a time, then keeps
sending silence, as a microphone would: a Live server's voice detector needs
the silence after the last word to end the turn. ``WavSpeaker`` pulls from a
``PlaybackBuffer`` on a real-time clock and writes everything that would have
been heard, silence included, so the file keeps the conversation's timing
(and a barge-in cuts the reply in the file as it would in the room).

Both run on the event loop (asyncio tasks) and pace themselves against the
loop's clock with absolute deadlines, so they do not drift; the speaker's
``PlaybackBuffer`` stamps its times on that clock too. So under virtual time
(``tests/support/virtual_time.py``) a ten-second exchange runs in milliseconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from audio.aec import AEC_RATE
from audio.pcm import WavWriter, level_dbfs, read_wav
from audio.playback import REPLY_RATE, PlaybackBuffer

BLOCK_MS = 20


def loop_time() -> float:
    """The running event loop's clock (``time.monotonic`` unless a test runs the loop on virtual time)."""
    return asyncio.get_running_loop().time()


class _Clock:
    """Absolute deadlines every ``period_s`` on the loop's clock."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self._next: float | None = None

    async def tick(self) -> None:
        now = loop_time()
        if self._next is None:
            self._next = now
        self._next += self.period_s
        if self._next > now:
            await asyncio.sleep(self._next - now)


class WavMicrophone:
    """A WAV file played into the conversation in real time, then silence."""

    def __init__(self, path: Path, on_audio: Callable[[bytes, float], None]) -> None:
        self.path = path
        self.on_audio = on_audio
        self.pcm = read_wav(path, AEC_RATE)
        self.finished = asyncio.Event()

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / 2 / AEC_RATE

    async def run(self) -> None:
        block = AEC_RATE * BLOCK_MS // 1000 * 2
        clock = _Clock(BLOCK_MS / 1000)
        for start in range(0, len(self.pcm), block):
            chunk = self.pcm[start : start + block].ljust(block, b"\0")
            self.on_audio(chunk, level_dbfs(chunk))
            await clock.tick()
        self.finished.set()
        silence = bytes(block)
        while True:
            self.on_audio(silence, level_dbfs(silence))
            await clock.tick()


class WavSpeaker:
    """Writes what a speaker would play to a WAV file, in real time."""

    def __init__(self, path: Path, rate: int = REPLY_RATE) -> None:
        self.path = path
        self.rate = rate
        self.playback = PlaybackBuffer(rate, now=loop_time)
        self._writer = WavWriter(path, rate)

    async def run(self) -> None:
        samples = self.rate * BLOCK_MS // 1000
        clock = _Clock(BLOCK_MS / 1000)
        while True:
            self._writer.write(self.playback.read(samples).tobytes())
            await clock.tick()

    def close(self) -> None:
        self._writer.close()
