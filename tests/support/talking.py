"""Spoken test audio and scripted backends that listen, for the `assistant talk` tests.

The scripted backends here decide what they heard from the audio they
receive, by energy, the way a server's voice detector would at its crudest:
an utterance starts after ``SPEECH_FRAMES`` loud 20 ms frames and ends after
``SILENCE_FRAMES`` quiet ones. So a test's assertions rest on what the client
really sent (the question, the echo, a barge-in), not on a timer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from assistant.protocol import AudioChunk, ServerMessage
from audio.echo_bench import espeak
from audio.files import loop_time
from audio.pcm import level_dbfs, samples_of, write_wav
from tests.support.scripted import ScriptedSession

SPEECH_DBFS = -40.0
SPEECH_FRAMES = 5  # 100 ms of loud audio is speech
SILENCE_FRAMES = 25  # 500 ms of quiet ends it
FRAME_BYTES = 640  # 20 ms at 16 kHz


def spoken_wav(folder: Path, name: str, text: str, rate: int = 16_000, voice: str = "en-us") -> Path:
    """``text`` spoken by espeak-ng into ``folder/name`` (16-bit mono at ``rate``)."""
    path = folder / name
    if not path.exists():
        write_wav(path, espeak(text, rate, voice=voice), rate)
    return path


@dataclass
class Listener:
    """Frames the audio a scripted session receives and notices speech in it."""

    session: ScriptedSession
    received: bytearray = field(default_factory=bytearray)
    onsets: list[float] = field(default_factory=list)  # loop times speech was detected (virtual in looptime tests)
    _pending: bytearray = field(default_factory=bytearray)
    _loud: int = 0
    _quiet: int = 0
    speaking: bool = False

    async def next_frame(self, timeout: float = 30.0) -> bytes:
        while len(self._pending) < FRAME_BYTES:
            chunk = await self.session.expect(AudioChunk, timeout=timeout, skip_audio=False)
            self._pending += chunk.pcm
            self.received += chunk.pcm
        frame = bytes(self._pending[:FRAME_BYTES])
        del self._pending[:FRAME_BYTES]
        loud = level_dbfs(frame) > SPEECH_DBFS
        self._loud = self._loud + 1 if loud else 0
        self._quiet = 0 if loud else self._quiet + 1
        if not self.speaking and self._loud >= SPEECH_FRAMES:
            self.speaking = True
            self.onsets.append(loop_time())
        elif self.speaking and self._quiet >= SILENCE_FRAMES:
            self.speaking = False
        return frame

    async def utterance(self, timeout: float = 30.0) -> bytes:
        """Wait for speech to start and end; returns the audio from its start."""
        while not self.speaking:
            await self.next_frame(timeout)
        start = len(self.received) - len(self._pending) - SPEECH_FRAMES * FRAME_BYTES
        while self.speaking:
            await self.next_frame(timeout)
        return bytes(self.received[max(0, start) :])

    async def listen_for(self, seconds: float) -> bool:
        """Keep listening for ``seconds``; whether speech started meanwhile."""
        deadline = loop_time() + seconds
        before = len(self.onsets)
        while loop_time() < deadline:
            try:
                await asyncio.wait_for(self.next_frame(), max(0.01, deadline - loop_time()))
            except TimeoutError:
                break
            if len(self.onsets) > before:
                return True
        return False


def chunks(pcm: bytes, size: int) -> list[bytes]:
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def best_match(haystack: bytes, needle: bytes) -> float:
    """Normalised cross-correlation peak of ``needle`` inside ``haystack`` (1.0: an exact copy)."""
    a = samples_of(haystack).astype(np.float64)
    b = samples_of(needle).astype(np.float64)
    if a.size < b.size or not b.any():
        return 0.0
    size = 1 << (a.size + b.size).bit_length()
    correlation = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)[: a.size - b.size + 1]
    energy = np.concatenate([[0.0], np.cumsum(a**2)])
    windows = np.sqrt(np.maximum(energy[b.size :] - energy[: -b.size], 0.0))
    score = correlation / np.maximum(windows * np.linalg.norm(b), 1e-9)
    return float(score.max())


def reply_messages(pcm24k: bytes, transcript: str, chunk_ms: int = 40) -> list[ServerMessage]:
    """A spoken reply as a backend streams it: audio chunks, the transcript, and the turn's end."""
    size = 24_000 * chunk_ms // 1000 * 2
    return [
        *(ServerMessage.model_audio(chunk) for chunk in chunks(pcm24k, size)),
        ServerMessage.output_transcript(transcript),
        ServerMessage.turn_done(),
    ]


def voiced_seconds(pcm: bytes, rate: int, threshold: float = 100.0) -> float:
    """How much of ``pcm`` is not (near) silence, counted in 20 ms blocks."""
    block = rate // 50
    samples = samples_of(pcm)[: len(pcm) // 2 // block * block].reshape(-1, block).astype(np.float64)
    return float(np.sum(np.sqrt(np.mean(samples**2, axis=1)) > threshold)) * 0.02
