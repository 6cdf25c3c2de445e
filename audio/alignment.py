"""Keeping the echo where the canceller learnt it: a signal-based echo lag tracker.

Device timestamps place the reference within a few tens of milliseconds of
the echo, and the canceller's filter covers that. But the filter learns the
echo at one lag; when the lag moves (an output underrun, a sound server that
re-times its buffers), the learnt filter no longer fits and the echo comes
back until it relearns. ``EchoLagTracker`` measures the lag from the signals
themselves (generalised cross-correlation with phase transform, which gives a
sharp peak for speech) and reports it when confident, so the caller can move
the reference back to where the filter expects the echo.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from audio.aec import AEC_RATE, DEFAULT_TAIL_MS, FRAME_SAMPLES
from audio.playback import REFERENCE_LEAD_S, ReferenceTimeline

logger = logging.getLogger("audio.alignment")

DEFAULT_WINDOW_S = 1.0
DEFAULT_HOP_S = 0.25
# A move of the echo is believed once this many measurements in a row agree on it.
CONFIRMATIONS = 3
DEFAULT_MAX_LAG_S = 0.3
# Peak over mean of the correlation: speech echo gives 15-90, noise or double talk less.
MIN_CONFIDENCE = 10.0
MIN_REFERENCE_RMS = 100.0  # int16 units: below this the speaker is (nearly) silent


def echo_lag(captured: np.ndarray, reference: np.ndarray, max_lag: int) -> tuple[int, float]:
    """The lag (samples) at which ``reference`` best explains ``captured``, and the peak's confidence."""
    size = 1 << (captured.size + reference.size).bit_length()
    cross = np.fft.rfft(captured.astype(np.float64), size) * np.conj(np.fft.rfft(reference.astype(np.float64), size))
    cross /= np.abs(cross) + 1e-9
    correlation = np.fft.irfft(cross, size)
    around_zero = np.concatenate([correlation[-max_lag:], correlation[: max_lag + 1]])
    peak = int(np.argmax(around_zero))
    confidence = float(around_zero[peak] / (np.mean(np.abs(around_zero)) + 1e-12))
    return peak - max_lag, confidence


class EchoLagTracker:
    """Feeds on paired 10 ms frames; every ``hop_s`` it may report the echo's lag in samples."""

    def __init__(
        self,
        window_s: float = DEFAULT_WINDOW_S,
        hop_s: float = DEFAULT_HOP_S,
        max_lag_s: float = DEFAULT_MAX_LAG_S,
        min_confidence: float = MIN_CONFIDENCE,
    ) -> None:
        self.window = int(window_s * AEC_RATE)
        self.hop_frames = max(1, int(hop_s * AEC_RATE) // FRAME_SAMPLES)
        self.max_lag = int(max_lag_s * AEC_RATE)
        self.min_confidence = min_confidence
        self._captured = np.zeros(self.window, dtype=np.int16)
        self._reference = np.zeros(self.window, dtype=np.int16)
        self._frames = 0

    def observe(self, captured: np.ndarray, reference: np.ndarray) -> int | None:
        """Add one frame pair; returns the echo lag when a confident measurement is due."""
        self._captured = np.concatenate([self._captured[captured.size :], captured])
        self._reference = np.concatenate([self._reference[reference.size :], reference])
        self._frames += 1
        if self._frames % self.hop_frames or self._frames * FRAME_SAMPLES < self.window:
            return None
        if float(np.sqrt(np.mean(np.square(self._reference.astype(np.float64))))) < MIN_REFERENCE_RMS:
            return None
        lag, confidence = echo_lag(self._captured, self._reference, self.max_lag)
        return lag if confidence >= self.min_confidence else None

    def forget(self) -> None:
        """Drop the history (after the reference was moved, old pairs no longer match)."""
        self._captured[:] = 0
        self._reference[:] = 0
        self._frames = 0


class EchoAligner:
    """Pairs microphone frames with the reference, keeping the echo at the lag the filter learnt.

    The first confident lag measurement is kept if it lies well inside the
    filter (else the reference is moved so the echo lands ``target_lag_s``
    in); later measurements that differ move the reference back by the
    difference once ``CONFIRMATIONS`` agree. The first disagreeing
    measurement already calls ``on_disturbance`` (the canceller goes back to
    gating), since until the move the learnt filter no longer fits.
    """

    def __init__(
        self,
        timeline: ReferenceTimeline,
        tracker: EchoLagTracker | None = None,
        *,
        target_lag_s: float = REFERENCE_LEAD_S,
        max_lag_s: float = DEFAULT_TAIL_MS / 1000 - 0.05,
        min_move: int = 8,
        on_disturbance: Callable[[], None] | None = None,
    ) -> None:
        self.timeline = timeline
        self.on_disturbance = on_disturbance
        self.tracker = tracker or EchoLagTracker()
        self.target_lag = int(target_lag_s * AEC_RATE)
        self.max_lag = int(max_lag_s * AEC_RATE)
        self.min_move = min_move
        self.expected_lag: int | None = None
        self.moves = 0
        self._candidate: int | None = None
        self._agreeing = 0

    def reference_for(self, captured: np.ndarray, captured_at: float) -> np.ndarray:
        """The reference frame to cancel ``captured`` (captured at ``captured_at``) with."""
        reference = self.timeline.read(captured.size, captured_at)
        lag = self.tracker.observe(captured, reference)
        if lag is not None:
            self._follow(lag)
        return reference

    def _follow(self, lag: int) -> None:
        if self.expected_lag is None:
            self.expected_lag = lag if 0 < lag <= self.max_lag else self.target_lag
            logger.info(
                "echo found %.1f ms after the reference; keeping it at %.1f ms", lag / 16, self.expected_lag / 16
            )
        move = lag - self.expected_lag
        if abs(move) < self.min_move:
            self._agreeing = 0
            return
        if self._agreeing and self._candidate is not None and abs(lag - self._candidate) <= 2:
            self._agreeing += 1
        else:
            self._agreeing = 1
            if self.on_disturbance is not None:
                self.on_disturbance()  # the learnt filter no longer fits: protect before the move
        self._candidate = lag
        if self._agreeing >= CONFIRMATIONS:
            self.timeline.shift(-move)
            self.tracker.forget()
            self.moves += 1
            self._agreeing = 0
            logger.info("echo moved by %.1f ms; reference moved back", move / 16)
