"""Sample-rate conversion for 16-bit mono PCM, one chunk at a time.

A stream is resampled chunk by chunk with the filter state carried between
chunks, so 20 ms pieces join without clicks; ``resample`` converts a whole
buffer at once.
"""

from __future__ import annotations

import numpy as np
import soxr


class StreamResampler:
    """Converts a stream of int16 PCM chunks from ``in_rate`` to ``out_rate``."""

    def __init__(self, in_rate: int, out_rate: int, quality: str = "HQ") -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality=quality)

    def process(self, pcm: bytes) -> bytes:
        """Resample one chunk; output may lag input by the filter's few milliseconds."""
        samples = np.frombuffer(pcm, dtype="<i2")
        return self._stream.resample_chunk(samples).astype("<i2", copy=False).tobytes()

    def flush(self) -> bytes:
        """Return what the filter still holds at the end of the stream."""
        return self._stream.resample_chunk(np.zeros(0, dtype="<i2"), last=True).astype("<i2", copy=False).tobytes()


def resample(pcm: bytes, in_rate: int, out_rate: int) -> bytes:
    """Resample a whole int16 PCM buffer."""
    if in_rate == out_rate:
        return pcm
    samples = np.frombuffer(pcm, dtype="<i2")
    return soxr.resample(samples, in_rate, out_rate, quality="HQ").astype("<i2", copy=False).tobytes()
