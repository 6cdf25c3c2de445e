"""From a stream of camera or screen frames to the few JPEGs worth sending.

Live clients send about one frame a second; a camera delivers thirty. The
sampler decides, per frame, in the cheapest order:

1. rate: is a frame due? At most ``max_fps`` while someone is speaking (or
   spoke within ``speech_hold_s``), ``idle_fps`` otherwise. Answering no costs
   a comparison, and for cameras the frame is not even decoded
   (``FrameSource.grab`` without ``retrieve``).
2. change: does it differ perceptibly from the last frame sent
   (``ChangeGate``, ~1 ms)? An unchanged view is re-checked at most every
   ``recheck_s``, so a static scene costs a few thumbnails a second.
3. only then resize (longest side <= ``max_side``) and JPEG-encode.

All decisions use the frames' own timestamps and the times passed to
``note_speech``, never a wall clock, so tests drive it with made-up times and
a recorded video replays exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from assistant.protocol import VideoFrame
from vision.change import ChangeGate
from vision.frames import DEFAULT_JPEG_QUALITY, DEFAULT_MAX_SIDE, Frame, encode_jpeg, fit_within
from vision.sources import FrameSource

DEFAULT_MAX_FPS = 1.0
DEFAULT_IDLE_FPS = 0.2
DEFAULT_SPEECH_HOLD_S = 5.0
DEFAULT_RECHECK_S = 0.2


@dataclass(frozen=True, slots=True)
class SampledFrame:
    """A frame the sampler let through: resized, encoded, and why it was sent."""

    jpeg: bytes
    image: np.ndarray
    timestamp: float
    change: float

    def to_video_frame(self) -> VideoFrame:
        """The frame as the Live protocol's ``realtimeInput.video`` carries it."""
        return VideoFrame(self.jpeg, "image/jpeg")


class FrameSampler:
    """Rate cap, change gate, resize and encode, in that order. One per stream; not thread-safe."""

    def __init__(
        self,
        *,
        max_fps: float = DEFAULT_MAX_FPS,
        idle_fps: float = DEFAULT_IDLE_FPS,
        speech_hold_s: float = DEFAULT_SPEECH_HOLD_S,
        recheck_s: float = DEFAULT_RECHECK_S,
        max_side: int = DEFAULT_MAX_SIDE,
        jpeg_quality: int = DEFAULT_JPEG_QUALITY,
        gate: ChangeGate | None = None,
    ) -> None:
        if max_fps <= 0 or idle_fps <= 0:
            raise ValueError("max_fps and idle_fps must be positive")
        if idle_fps > max_fps:
            raise ValueError("idle_fps cannot exceed max_fps")
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(f"JPEG quality must be 1..100, not {jpeg_quality}")
        self.max_fps = max_fps
        self.idle_fps = idle_fps
        self.speech_hold_s = speech_hold_s
        self.recheck_s = recheck_s
        self.max_side = max_side
        self.jpeg_quality = jpeg_quality
        self.gate = gate or ChangeGate()
        self._last_sent: float | None = None
        self._next_check = float("-inf")
        self._speech_reported = False
        self._speaking = False
        self._speech_ended_at = float("-inf")
        self.counts = {"offered": 0, "rate_limited": 0, "unchanged": 0, "sent": 0}

    def note_speech(self, active: bool, now: float) -> None:
        """Someone started (``True``) or stopped speaking at ``now`` (the frames' clock).

        A sampler that is never told about speech samples at ``max_fps``: the
        idle rate is an economy for callers that know when nobody talks.
        """
        if self._speaking and not active:
            self._speech_ended_at = now
        self._speaking = active
        self._speech_reported = True

    def interval(self, now: float) -> float:
        """Seconds that must pass between two frames sent, at ``now``."""
        conversing = not self._speech_reported or self._speaking or now - self._speech_ended_at < self.speech_hold_s
        return 1.0 / (self.max_fps if conversing else self.idle_fps)

    def due(self, now: float) -> bool:
        """Whether a frame captured at ``now`` would be looked at at all (cheap; call before decoding)."""
        if now < self._next_check:
            return False
        return self._last_sent is None or now - self._last_sent >= self.interval(now)

    def offer(self, frame: Frame) -> SampledFrame | None:
        """The frame resized and encoded, or None when it is not due or not changed."""
        self.counts["offered"] += 1
        if not self.due(frame.timestamp):
            self.counts["rate_limited"] += 1
            return None
        if not self.gate.changed(frame.image):
            self._next_check = frame.timestamp + self.recheck_s
            self.counts["unchanged"] += 1
            return None
        image = fit_within(frame.image, self.max_side)
        self._last_sent = frame.timestamp
        self.counts["sent"] += 1
        return SampledFrame(encode_jpeg(image, self.jpeg_quality), image, frame.timestamp, self.gate.last_score)

    def skip_until_due(self, source: FrameSource) -> Frame | None:
        """Advance ``source`` to the next frame that is due and decode only that one (blocking)."""
        while (timestamp := source.grab()) is not None:
            if self.due(timestamp):
                return source.retrieve()
            self.counts["offered"] += 1
            self.counts["rate_limited"] += 1
        return None

    def next_frame(self, source: FrameSource) -> SampledFrame | None:
        """The next frame from ``source`` worth sending, or None when the source ends (blocking)."""
        while (frame := self.skip_until_due(source)) is not None:
            sampled = self.offer(frame)
            if sampled is not None:
                return sampled
        return None


async def sampled_frames(source: FrameSource, sampler: FrameSampler | None = None) -> AsyncIterator[SampledFrame]:
    """Frames worth sending from ``source``, read on one thread of their own.

    Capture and encoding block, so they run off the event loop; one dedicated
    thread (not the shared pool) because screen grabbers and some camera
    drivers must be used from the thread that opened them.
    """
    sampler = sampler or FrameSampler()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="frames")
    loop = asyncio.get_running_loop()
    try:
        while (sampled := await loop.run_in_executor(executor, sampler.next_frame, source)) is not None:
            yield sampled
    finally:
        await loop.run_in_executor(executor, source.close)
        executor.shutdown(wait=False)
