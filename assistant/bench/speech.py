"""Spoken prompts made at run time, and a microphone that sends them in real time.

Benchmarks and tests speak to the assistant the way a person does: speech
synthesised on the spot (espeak-ng, or a Piper voice as a second, more
natural speaker), trimmed so that "end of speech" is the last voiced sample,
then sent in 20 ms chunks on a real-time clock with silence in between,
as a microphone would. The microphone sends each chunk when it would have
been recorded (at the end of its 20 ms), so measured latency starts where a
user's does.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from audio.resample import resample

if TYPE_CHECKING:
    from assistant.backends.local.tts import Synthesizer

SAMPLE_RATE = 16_000
CHUNK_S = 0.02
VOICED_LEVEL = 0.005  # of full scale: quieter samples at either end count as silence


def voiced_samples(audio: np.ndarray) -> np.ndarray:
    """Indices of the samples loud enough to count as speech (the rest, at either end, is silence)."""
    return np.flatnonzero(np.abs(audio.astype(np.int32)) > VOICED_LEVEL * 32768)


def spoken_prompt(text: str, voice: Synthesizer) -> bytes:
    """``text`` spoken by ``voice`` as 16 kHz int16 PCM, with silence trimmed at both ends."""
    samples = voice.synthesize(text)
    pcm = resample(samples.astype("<i2").tobytes(), voice.sample_rate, SAMPLE_RATE)
    audio = np.frombuffer(pcm, dtype="<i2")
    voiced = voiced_samples(audio)
    if voiced.size == 0:
        raise ValueError(f"{voice.name} produced no audible speech for {text!r}")
    return audio[voiced[0] : voiced[-1] + 1].tobytes()


@dataclass(frozen=True, slots=True)
class Utterance:
    """When a prompt was spoken, on the microphone's clock."""

    started: float
    ended: float  # the moment the last voiced sample was recorded: "silence onset"


class Microphone:
    """Sends audio in real time, silence when nobody speaks, like a live microphone."""

    def __init__(
        self,
        send: Callable[[bytes], Awaitable[None]],
        clock: Callable[[], float] = time.monotonic,
        chunk_s: float = CHUNK_S,
    ) -> None:
        self._send = send
        self._clock = clock
        self._chunk_bytes = int(chunk_s * SAMPLE_RATE) * 2
        self._chunk_s = chunk_s
        self._queue: deque[tuple[bytes, asyncio.Future[Utterance]]] = deque()

    def say(self, pcm: bytes) -> asyncio.Future[Utterance]:
        """Queue speech; the future resolves once its last chunk has been sent."""
        future: asyncio.Future[Utterance] = asyncio.get_running_loop().create_future()
        self._queue.append((pcm, future))
        return future

    async def run(self) -> None:
        """Send chunk after chunk until cancelled; each at the end of the 20 ms it covers."""
        silence = b"\x00" * self._chunk_bytes
        start = self._clock()
        sent = 0
        current: tuple[bytes, asyncio.Future[Utterance]] | None = None
        offset = 0
        began = 0.0
        while True:
            if current is None and self._queue:
                current, offset = self._queue.popleft(), 0
                began = start + sent * self._chunk_s
            if current is None:
                chunk = silence
            else:
                pcm, future = current
                chunk = pcm[offset : offset + self._chunk_bytes]
                offset += len(chunk)
                if offset >= len(pcm):
                    ended = start + sent * self._chunk_s + len(chunk) / 2 / SAMPLE_RATE
                    chunk = chunk + silence[len(chunk) :]
                    future.set_result(Utterance(began, ended))
                    current = None
            sent += 1
            delay = start + sent * self._chunk_s - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            await self._send(chunk)
