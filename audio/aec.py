"""Keeping the assistant from hearing itself: echo cancellation or half-duplex gating.

Through laptop speakers the reply leaks back into the microphone, and a
server-side voice detector would take it for the user barging in. Two
processors share one interface, ``process(captured, reference)``, called once
per 10 ms frame with the microphone samples and the speaker samples that were
actually played at the same moment (``audio.reference`` keeps them aligned):

- ``SpeexEchoCanceller``: speexdsp's MDF adaptive filter subtracts the
  modelled echo, then its preprocessor suppresses the residue. Measured on a
  simulated room (``audio.echo_bench``): 20-30 dB of echo removed once it has
  learnt the room, while the user's voice over the top survives nearly
  untouched, so barge-in keeps working. It mutes like the gate below while
  it learns the room, until it has shown its residue is far below speech.
- ``HalfDuplexGate``: the safe fallback when speexdsp is missing or AEC is
  turned off: the microphone is muted while the speaker plays and for a short
  hangover after (the room's reverberation and the devices' timing slack).
  The assistant never hears itself, but cannot be interrupted by voice while
  it talks.

``create_echo_processor`` picks one from the user's ``--echo`` choice.
"""

from __future__ import annotations

import logging
import math
from enum import StrEnum
from typing import Protocol

import numpy as np

from assistant.errors import AssistantError
from audio.pcm import FULL_SCALE, SILENCE_DBFS, level_dbfs
from audio.speexdsp import SpeexEchoState, SpeexPreprocessor, SpeexUnavailable

logger = logging.getLogger("audio.aec")

AEC_RATE = 16_000
FRAME_MS = 10
FRAME_SAMPLES = AEC_RATE * FRAME_MS // 1000
# Echo can arrive this long after its sample was played: the room's reverberation
# plus what is left of the devices' timing error after alignment.
DEFAULT_TAIL_MS = 200
# Played audio below this level counts as silence; the gate keeps the microphone muted
# this long after the speaker was last active.
GATE_SPEAKER_DBFS = -55.0
DEFAULT_HANGOVER_MS = 300
# Echo the canceller must have removed over the last second of playback before the user
# may talk over the assistant ...
DEFAULT_TRUSTED_ERLE_DB = 15.0
# ... and the loudest 100 ms left of the echo must be this quiet, 15 dB below soft speech
# (-30 dBFS), so no voice detector takes it for the user: loud echo needs more cancellation.
TRUSTED_RESIDUAL_DBFS = -45.0
ERLE_WINDOW_FRAMES = 100


class EchoMode(StrEnum):
    """What ``--echo`` asks for."""

    AUTO = "auto"  # cancel when speexdsp is available, else gate
    CANCEL = "cancel"  # cancel, or fail with the command that installs speexdsp
    GATE = "gate"  # half duplex
    OFF = "off"  # nothing (headphones)


class EchoProcessor(Protocol):
    """Takes one frame of microphone and played samples (16 kHz int16) and returns the frame to send.

    ``speaker_active`` says whether the speaker is (or was just) sounding,
    from the playback side's own bookkeeping: it needs no sample-exact
    alignment, so gating on it is safe even when the devices' timestamps are
    tens of milliseconds off.
    """

    name: str

    def process(self, captured: np.ndarray, reference: np.ndarray, speaker_active: bool) -> np.ndarray: ...


class HalfDuplexGate:
    """Mutes the microphone while the speaker is active and ``hangover_ms`` after.

    It counts frames, not wall-clock time, so it behaves identically in tests
    and on devices.
    """

    name = "half-duplex gate"

    def __init__(self, hangover_ms: int = DEFAULT_HANGOVER_MS) -> None:
        self.hangover_frames = max(1, hangover_ms // FRAME_MS)
        self._frames_since_audible = self.hangover_frames

    @property
    def muted(self) -> bool:
        return self._frames_since_audible < self.hangover_frames

    def process(self, captured: np.ndarray, reference: np.ndarray, speaker_active: bool) -> np.ndarray:
        if speaker_active:
            self._frames_since_audible = 0
        else:
            self._frames_since_audible = min(self._frames_since_audible + 1, self.hangover_frames)
        return np.zeros_like(captured) if self.muted else captured


class SpeexEchoCanceller:
    """speexdsp's adaptive echo canceller followed by its residual echo suppressor.

    The adaptive filter starts knowing nothing of the room: measured on the
    simulated room it removes about 2 dB of echo in the first second of
    playback, 11 dB in the second and 20-30 dB from then on. Until it has
    shown it removes ``trusted_erle_db`` of echo over the last second of
    playback, with no 100 ms left louder than ``TRUSTED_RESIDUAL_DBFS``, a
    ``HalfDuplexGate`` mutes the microphone while the speaker is
    active, so the assistant never interrupts itself while the canceller
    learns. ``relearn`` (the echo moved: the devices re-timed their buffers)
    brings the gate back until the canceller proves itself again. If it never
    does (a distorting speaker), the client simply stays half duplex while the
    assistant talks.
    """

    name = "speex echo canceller"

    def __init__(
        self,
        tail_ms: int = DEFAULT_TAIL_MS,
        suppress_residual: bool = True,
        trusted_erle_db: float | None = DEFAULT_TRUSTED_ERLE_DB,
    ) -> None:
        self._echo = SpeexEchoState(FRAME_SAMPLES, AEC_RATE * tail_ms // 1000, AEC_RATE)
        self._residual = SpeexPreprocessor(FRAME_SAMPLES, AEC_RATE, self._echo) if suppress_residual else None
        self.trusted_erle_db = trusted_erle_db
        self._guard = HalfDuplexGate()
        self._erle = ErleWindow()
        self.guarding = trusted_erle_db is not None

    def process(self, captured: np.ndarray, reference: np.ndarray, speaker_active: bool) -> np.ndarray:
        cleaned = self._echo.cancel(captured, reference)
        if self._residual is not None:
            cleaned = self._residual.run(cleaned)
        if not self.guarding:
            return cleaned
        if audible(reference):
            self._erle.add(captured, cleaned)
            erle, residual = self._erle.figures()
            if erle is not None and self.trusted_erle_db is not None and erle >= self.trusted_erle_db:
                if residual <= TRUSTED_RESIDUAL_DBFS:
                    self.guarding = False
                    logger.info("echo canceller trusted (%.0f dB removed, %.0f dBFS left): full duplex", erle, residual)
        return self._guard.process(cleaned, reference, speaker_active)

    def relearn(self) -> None:
        """The echo path changed: mute while the speaker plays until the canceller is trusted again."""
        if self.trusted_erle_db is not None and not self.guarding:
            self.guarding = True
            self._erle = ErleWindow()
            logger.info("echo path changed: half duplex until the canceller catches up")


class ErleWindow:
    """Echo removed (dB) and the level left (dBFS) over the last ``frames`` frames of audible playback."""

    def __init__(self, frames: int = ERLE_WINDOW_FRAMES) -> None:
        self._captured = np.zeros(frames)
        self._cleaned = np.zeros(frames)
        self._count = 0

    def add(self, captured: np.ndarray, cleaned: np.ndarray) -> None:
        index = self._count % self._captured.size
        self._captured[index] = float(np.sum(np.square(captured.astype(np.float64))))
        self._cleaned[index] = float(np.sum(np.square(cleaned.astype(np.float64))))
        self._count += 1

    def figures(self) -> tuple[float | None, float]:
        """(echo removed in dB, None until the window is full; the loudest 100 ms left, in dBFS)."""
        blocks = self._cleaned[: self._cleaned.size // 10 * 10].reshape(-1, 10).sum(axis=1)
        loudest = float(blocks.max()) / (10 * FRAME_SAMPLES * FULL_SCALE**2)
        loudest_dbfs = 10 * math.log10(loudest) if loudest > 0 else SILENCE_DBFS
        if self._count < self._captured.size:
            return None, loudest_dbfs
        return 10 * math.log10((self._captured.sum() + 1.0) / (self._cleaned.sum() + 1.0)), loudest_dbfs


def audible(samples: np.ndarray) -> bool:
    """Whether a frame of played samples is loud enough for the microphone to hear."""
    return level_dbfs(samples) > GATE_SPEAKER_DBFS


class EchoUnavailable(AssistantError, RuntimeError):
    """``--echo cancel`` was asked for but speexdsp is missing; the message says how to install it."""


def create_echo_processor(mode: EchoMode) -> EchoProcessor | None:
    """The processor for ``mode``; ``None`` for ``off``. ``auto`` falls back to the gate, with a warning."""
    if mode is EchoMode.OFF:
        return None
    if mode is EchoMode.GATE:
        return HalfDuplexGate()
    try:
        return SpeexEchoCanceller()
    except SpeexUnavailable as exc:
        if mode is EchoMode.CANCEL:
            raise EchoUnavailable(str(exc)) from None
        logger.warning("echo cancellation unavailable, muting the microphone while the assistant talks: %s", exc)
        return HalfDuplexGate()
