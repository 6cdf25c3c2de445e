"""16-bit mono PCM helpers: conversions, levels, framing and WAV files.

Audio crosses every seam of the project as little-endian int16 mono bytes;
NumPy arrays of int16 are used inside the signal processing. WAV files are
read at whatever rate and channel count they have and converted (soxr) to the
rate the caller works at.
"""

from __future__ import annotations

import math
import wave
from pathlib import Path
from types import TracebackType

import numpy as np

from assistant.errors import AssistantError
from audio.resample import resample

SAMPLE_WIDTH = 2
FULL_SCALE = 32768.0
SILENCE_DBFS = -120.0


def samples_of(pcm: bytes) -> np.ndarray:
    """int16 samples viewing ``pcm`` (read-only, no copy)."""
    return np.frombuffer(pcm, dtype="<i2")


def level_dbfs(samples: np.ndarray | bytes) -> float:
    """RMS level in dB relative to full scale; ``SILENCE_DBFS`` for digital silence."""
    array = samples_of(samples) if isinstance(samples, bytes) else samples
    if array.size == 0:
        return SILENCE_DBFS
    power = float(np.mean(np.square(array.astype(np.float64)))) / FULL_SCALE**2
    return max(SILENCE_DBFS, 10 * math.log10(power)) if power > 0 else SILENCE_DBFS


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Round and clip float samples (int16 scale) to int16."""
    return np.clip(np.rint(samples), -32768, 32767).astype(np.int16)


class FrameSplitter:
    """Cuts a stream of PCM chunks of any size into frames of exactly ``frame_samples``.

    Devices and files deliver whatever block size they like; the echo
    canceller and the wire want fixed frames. The remainder waits for the next
    chunk.
    """

    def __init__(self, frame_samples: int) -> None:
        self.frame_bytes = frame_samples * SAMPLE_WIDTH
        self._pending = bytearray()

    def push(self, pcm: bytes) -> list[bytes]:
        self._pending += pcm
        count = len(self._pending) // self.frame_bytes
        frames = [bytes(self._pending[i * self.frame_bytes : (i + 1) * self.frame_bytes]) for i in range(count)]
        del self._pending[: count * self.frame_bytes]
        return frames


class WavFormatError(AssistantError, ValueError):
    """A file that is not a PCM WAV this project can read; the message says what it is."""


def read_wav(path: Path, rate: int) -> bytes:
    """A WAV file as int16 mono PCM at ``rate`` (channels averaged, soxr resampling)."""
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, file_rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            data = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise WavFormatError(
            f"{path} is not a PCM WAV file ({exc}); convert it with: sox {path} -b 16 out.wav"
        ) from None
    if width != SAMPLE_WIDTH:
        raise WavFormatError(f"{path} has {8 * width}-bit samples; convert it with: sox {path} -b 16 out.wav")
    samples = np.frombuffer(data, dtype="<i2")
    if channels > 1:
        samples = to_int16(samples.reshape(-1, channels).astype(np.float64).mean(axis=1))
    return resample(samples.astype("<i2").tobytes(), file_rate, rate)


class WavWriter:
    """Writes int16 mono PCM to a WAV file as it arrives (a reply can be long)."""

    def __init__(self, path: Path, rate: int) -> None:
        self.path = path
        self.rate = rate
        self._wav = wave.open(str(path), "wb")
        self._wav.setnchannels(1)
        self._wav.setsampwidth(SAMPLE_WIDTH)
        self._wav.setframerate(rate)
        self.samples_written = 0

    def write(self, pcm: bytes) -> None:
        self._wav.writeframes(pcm)
        self.samples_written += len(pcm) // SAMPLE_WIDTH

    def close(self) -> None:
        self._wav.close()

    def __enter__(self) -> WavWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def write_wav(path: Path, pcm: bytes, rate: int) -> None:
    """Write a whole int16 mono buffer to a WAV file."""
    with WavWriter(path, rate) as writer:
        writer.write(pcm)
