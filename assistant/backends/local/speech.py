"""The reply's way out: text pieces to 24 kHz audio messages, paced to playback.

``Speaker`` runs three steps at once, so the first clause is playing while
the rest is still being written and synthesised: the splitter cuts the text
into pieces, a synthesis task turns each piece into audio on the TTS thread,
and an emitter sends each piece's ``outputTranscription`` with its audio.

The emitter keeps the client at most ``PLAYOUT_LEAD_S`` ahead of playback
(``PlayoutClock`` assumes the client plays audio as it arrives, in real
time). Sending a whole reply at once would leave a barge-in with seconds of
audio already at the client and a transcript of words never heard; pacing
keeps both honest, so the history can keep only what was actually spoken
(``SpokenRecord``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from assistant.backends.local.text import SentenceSplitter, speakable
from assistant.backends.local.tts import Synthesizer
from assistant.protocol import OUTPUT_AUDIO_RATE, OutputTranscript, ReplyAudio, ServerEvent
from audio.resample import resample

PLAYOUT_LEAD_S = 1.0
CHUNK_S = 0.1
SILENCE_LEVEL = 200  # int16 amplitude below which leading samples are trimmed
KEEP_LEADING_S = 0.01


class PlayoutClock:
    """Where the client's playback is, assuming it plays audio as it arrives, in real time."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._ends_at: float | None = None
        self.sent_s = 0.0

    def sent(self, seconds: float) -> None:
        """Audio of ``seconds`` was just sent."""
        now = self._clock()
        starts = max(self._ends_at or now, now)
        self._ends_at = starts + seconds
        self.sent_s += seconds

    def ahead(self) -> float:
        """Seconds of sent audio not played yet."""
        if self._ends_at is None:
            return 0.0
        return max(0.0, self._ends_at - self._clock())

    def played(self) -> float:
        """Seconds of sent audio played so far."""
        return self.sent_s - self.ahead()


@dataclass
class SpokenRecord:
    """Each piece of the reply with where its audio starts, to tell what was heard."""

    pieces: list[tuple[str, float, float]] = field(default_factory=list)  # text, start, duration

    def add(self, text: str, start_s: float, duration_s: float) -> None:
        self.pieces.append((text, start_s, duration_s))

    @property
    def text(self) -> str:
        return "".join(text for text, _, _ in self.pieces)

    def heard(self, played_s: float, first: int = 0, last: int | None = None) -> str:
        """The text of pieces ``first:last`` whose audio was played by ``played_s``.

        Whole pieces, then the share of the next piece's words that its
        played fraction covers.
        """
        heard = ""
        for text, start, duration in self.pieces[first:last]:
            if start + duration <= played_s + 1e-6:
                heard += text
                continue
            if played_s > start and duration > 0:
                words = text.split()
                share = int(len(words) * (played_s - start) / duration)
                if share:
                    heard += text[: len(text) - len(text.lstrip())] + " ".join(words[:share])
            break
        return heard


def trim_leading_silence(samples: np.ndarray, rate: int) -> np.ndarray:
    """Drop silence before the first sound (keeping 10 ms): the reply starts sooner."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > SILENCE_LEVEL)
    if loud.size == 0:
        return samples
    return samples[max(0, int(loud[0]) - int(KEEP_LEADING_S * rate)) :]


Emit = Callable[[ServerEvent, float], Awaitable[None]]


class Speaker:
    """Speaks one stretch of a reply: ``feed`` text as it comes, then ``finish``."""

    def __init__(
        self,
        voice: Synthesizer,
        executor: Executor,
        emit: Emit,
        *,
        first_in_reply: bool,
        transcribe: bool,
        record: SpokenRecord,
    ) -> None:
        self.voice = voice
        self.executor = executor
        self.emit = emit
        self.transcribe = transcribe
        self.record = record
        self._trim_start = first_in_reply
        self._splitter = SentenceSplitter()
        self._texts: asyncio.Queue[str | None] = asyncio.Queue()
        self._audio: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
        self._synthesis = asyncio.create_task(self._synthesise(), name="tts-synthesis")
        self._emitter = asyncio.create_task(self._send(), name="tts-emitter")

    def feed(self, text: str) -> None:
        for piece in self._splitter.feed(text):
            self._texts.put_nowait(piece)

    async def finish(self) -> None:
        """Speak what is left and wait until the last piece has been sent."""
        for piece in self._splitter.flush():
            self._texts.put_nowait(piece)
        self._texts.put_nowait(None)
        await asyncio.gather(self._synthesis, self._emitter)

    def cancel(self) -> None:
        self._synthesis.cancel()
        self._emitter.cancel()

    async def _synthesise(self) -> None:
        loop = asyncio.get_running_loop()
        while (piece := await self._texts.get()) is not None:
            text = speakable(piece)
            if not text.strip():
                continue
            samples = await loop.run_in_executor(self.executor, self.voice.synthesize, text.strip())
            if self._trim_start:
                samples = trim_leading_silence(samples, self.voice.sample_rate)
                self._trim_start = False
            pcm = resample(samples.astype("<i2").tobytes(), self.voice.sample_rate, OUTPUT_AUDIO_RATE)
            await self._audio.put((text, pcm))
        await self._audio.put(None)

    async def _send(self) -> None:
        chunk_bytes = int(CHUNK_S * OUTPUT_AUDIO_RATE) * 2
        while (item := await self._audio.get()) is not None:
            text, pcm = item
            duration = len(pcm) / 2 / OUTPUT_AUDIO_RATE
            self.record.add(text, self.record_offset(), duration)
            if self.transcribe:
                await self.emit(OutputTranscript(text), 0.0)
            for start in range(0, len(pcm), chunk_bytes):
                chunk = pcm[start : start + chunk_bytes]
                await self.emit(ReplyAudio.from_pcm(chunk), len(chunk) / 2 / OUTPUT_AUDIO_RATE)

    def record_offset(self) -> float:
        if not self.record.pieces:
            return 0.0
        _, start, duration = self.record.pieces[-1]
        return start + duration
