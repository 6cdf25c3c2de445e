"""Reply audio on its way to the speaker, and a record of what was actually played.

``PlaybackBuffer`` is a small jitter buffer between the network and the
output device: reply chunks arrive in bursts; the device pulls fixed blocks
on its own clock. It waits for ``prebuffer_ms`` before it starts (so one late
chunk does not cause a gap), plays the tail of a turn without waiting, and
drops everything at once when the user barges in (``flush``).

``ReferenceTimeline`` keeps what the speaker played, stamped with when it was
heard, so the echo canceller gets the reference that matches each microphone
frame: not what arrived from the network (a flushed reply never sounded), but
what the device was handed, silence included.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from audio.aec import AEC_RATE, audible
from audio.resample import StreamResampler

logger = logging.getLogger("audio.playback")

REPLY_RATE = 24_000
DEFAULT_PREBUFFER_MS = 80
# Reference kept for the echo canceller: more than any device latency plus the filter's tail.
DEFAULT_REFERENCE_S = 3.0
# Audio handed to the device sounds for up to this long after, on top of the device's
# reported latency (sound-server buffers): the speaker counts as active that long.
SPEAKER_TAIL_S = 0.25
# Device timestamps that disagree with the sample count by more than this mean the device
# was restarted: the stream is placed again.
REANCHOR_S = 0.5

# The reference runs this far ahead of the microphone frame it is paired with, so that
# echo lands at a positive lag of the canceller's filter (and the gate mutes before the
# echo arrives) despite the tens of milliseconds the devices' timestamps are off by.
REFERENCE_LEAD_S = 0.06


class PlaybackBuffer:
    """Thread-safe jitter buffer: the event loop pushes reply audio, the device thread reads it."""

    def __init__(
        self,
        device_rate: int,
        source_rate: int = REPLY_RATE,
        prebuffer_ms: int = DEFAULT_PREBUFFER_MS,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        """``now`` stamps ``started_at``: the clock of whoever reads (a device thread's, or a loop's for a file)."""
        self.device_rate = device_rate
        self.source_rate = source_rate
        self.prebuffer_samples = device_rate * prebuffer_ms // 1000
        self.now = now
        self._resampler = StreamResampler(source_rate, device_rate) if source_rate != device_rate else None
        self._chunks: deque[np.ndarray] = deque()
        self._buffered = 0
        self._lock = threading.Lock()
        self._playing = False
        self._draining = False
        self.underruns = 0
        self.audible = False  # the last block read held reply audio
        self.started_at: float | None = None  # when reply audio last began flowing to the device

    def push(self, pcm: bytes) -> None:
        """Queue a chunk of reply audio (16-bit mono at ``source_rate``)."""
        with self._lock:
            data = self._resampler.process(pcm) if self._resampler is not None else pcm
            if data:
                samples = np.frombuffer(data, dtype="<i2").copy()
                self._chunks.append(samples)
                self._buffered += samples.size
            self._draining = False

    def end_of_turn(self) -> None:
        """The reply is complete: play what is left even if it is shorter than the prebuffer."""
        with self._lock:
            if self._resampler is not None:
                tail = self._resampler.flush()
                self._resampler = StreamResampler(self.source_rate, self.device_rate)
                if tail:
                    samples = np.frombuffer(tail, dtype="<i2").copy()
                    self._chunks.append(samples)
                    self._buffered += samples.size
            self._draining = True

    def flush(self) -> float:
        """Drop everything queued (the user barged in); returns the seconds dropped."""
        with self._lock:
            dropped = self._buffered
            self._chunks.clear()
            self._buffered = 0
            self._playing = False
            self._draining = False
            if self._resampler is not None:
                self._resampler = StreamResampler(self.source_rate, self.device_rate)
        return dropped / self.device_rate

    @property
    def buffered_s(self) -> float:
        return self._buffered / self.device_rate

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing sounding."""
        return self._buffered == 0 and not self.audible

    def read(self, samples: int) -> np.ndarray:
        """Exactly ``samples`` samples for the device: reply audio, or silence while waiting."""
        out = np.zeros(samples, dtype=np.int16)
        with self._lock:
            if not self._playing:
                if self._buffered == 0 or (self._buffered < self.prebuffer_samples and not self._draining):
                    self.audible = False
                    return out
                self._playing = True
                self.started_at = self.now()
            filled = 0
            while filled < samples and self._chunks:
                chunk = self._chunks[0]
                take = min(samples - filled, chunk.size)
                out[filled : filled + take] = chunk[:take]
                filled += take
                if take == chunk.size:
                    self._chunks.popleft()
                else:
                    self._chunks[0] = chunk[take:]
            self._buffered -= filled
            self.audible = filled > 0
            if filled < samples:
                if not self._draining:
                    self.underruns += 1
                self._playing = False
        return out


class ReferenceTimeline:
    """What the speaker played, at the echo canceller's rate, indexed by the time it was heard.

    The output callback ``write``s each block with the time its first sample
    reaches the speaker; the input callback ``read``s the block that was
    playing when a microphone frame was captured. Both times come from the same
    monotonic clock, so the pairing holds whatever the devices' buffer sizes.
    """

    def __init__(self, device_rate: int, capacity_s: float = DEFAULT_REFERENCE_S) -> None:
        self.rate = AEC_RATE
        self._resampler = StreamResampler(device_rate, AEC_RATE) if device_rate != AEC_RATE else None
        self._ring = np.zeros(int(capacity_s * AEC_RATE), dtype=np.int16)
        self._written = 0  # samples written since the start
        self._anchor_time: float | None = None
        self._anchor_index = 0
        self._lock = threading.Lock()
        self._cursor: int | None = None  # where the next read continues
        self._heard = False  # anything audible written yet
        self.last_audible_at = -1e9  # monotonic time an audible block was last handed over
        self.tail_s = SPEAKER_TAIL_S  # the device's own latency is added by whoever knows it

    def write(self, played: np.ndarray, play_time: float) -> None:
        """Record a block handed to the output device; ``play_time`` is when its first sample sounds.

        Blocks are kept as one unbroken stream: the devices' timestamps jitter
        by tens of milliseconds through a sound server, far more than the
        canceller tolerates, so they only place the stream at the start (and
        again if they disagree by more than ``REANCHOR_S``: the device was
        restarted). ``EchoAligner`` corrects what the stream and the room
        disagree on, from the signals themselves.
        """
        data = played if self._resampler is None else np.frombuffer(self._resampler.process(played.tobytes()), "<i2")
        with self._lock:
            expected = None
            if self._anchor_time is not None:
                expected = self._anchor_time + (self._written - self._anchor_index) / self.rate
            if expected is None or not self._heard or abs(play_time - expected) > REANCHOR_S:
                # Until something audible is played the stream is silence, and following the
                # timestamps costs nothing: so the start of the reply is placed by the latest
                # (not the first, often wildly off) timestamp.
                if self._heard and expected is not None:
                    logger.info("speaker timestamps jumped by %.2f s: reference placed again", play_time - expected)
                self._anchor_time, self._anchor_index = play_time, self._written
            if audible(data):
                self._heard = True
                self.last_audible_at = time.monotonic()
            self._append(data)

    def speaker_active(self, now: float) -> bool:
        """Whether audible audio was handed to the device within ``tail_s`` (still sounding, or about to)."""
        return now - self.last_audible_at < self.tail_s

    def _append(self, data: np.ndarray) -> None:
        size = self._ring.size
        start = self._written % size
        first = min(data.size, size - start)
        self._ring[start : start + first] = data[:first]
        self._ring[: data.size - first] = data[first:]
        self._written += data.size

    def read(self, samples: int, capture_time: float, lead_s: float = REFERENCE_LEAD_S) -> np.ndarray:
        """The ``samples`` played from ``capture_time + lead_s`` on; silence where nothing was written.

        Reads continue where the last one ended, as one unbroken stream: the
        adaptive filter models the echo path sample by sample, and a reference
        that skipped or repeated a few samples at every block (the jitter of
        the devices' timestamps) would never be cancelled. Only a disagreement
        larger than ``REANCHOR_S`` moves the cursor; ``shift`` moves it
        by what the echo lag tracker measured.
        """
        out = np.zeros(samples, dtype=np.int16)
        with self._lock:
            if self._anchor_time is None:
                return out
            target = self._anchor_index + round((capture_time + lead_s - self._anchor_time) * self.rate)
            if self._cursor is None or not self._heard or abs(target - self._cursor) > REANCHOR_S * self.rate:
                if self._cursor is not None and self._heard:
                    logger.info("microphone timestamps jumped: reference read placed again")
                self._cursor = target
            start = self._cursor
            self._cursor += samples
            indices = np.arange(start, start + samples)
            valid = (indices >= self._written - self._ring.size) & (indices >= 0) & (indices < self._written)
            out[valid] = self._ring[indices[valid] % self._ring.size]
        return out

    def shift(self, samples: int) -> None:
        """Move the read cursor: positive reads later samples (the echo came earlier than expected)."""
        with self._lock:
            if self._cursor is not None:
                self._cursor += samples
