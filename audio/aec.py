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
  untouched, so barge-in keeps working. It mutes like the gate below for the
  first two seconds of playback, while it learns.
- ``HalfDuplexGate``: the safe fallback when speexdsp is missing or AEC is
  turned off: the microphone is muted while the speaker plays and for a short
  hangover after (the room's reverberation and the devices' timing slack).
  The assistant never hears itself, but cannot be interrupted by voice while
  it talks.

``create_echo_processor`` picks one from the user's ``--echo`` choice.
"""

from __future__ import annotations

import logging
from enum import Enum
from typing import Protocol

import numpy as np

from audio.pcm import level_dbfs
from audio.speexdsp import SpeexEchoState, SpeexPreprocessor, SpeexUnavailable

logger = logging.getLogger("audio.aec")

AEC_RATE = 16_000
FRAME_MS = 10
FRAME_SAMPLES = AEC_RATE * FRAME_MS // 1000
# Echo can arrive this long after its sample was played: the room's reverberation
# plus what is left of the devices' timing error after alignment.
DEFAULT_TAIL_MS = 200
# The gate treats the speaker as silent below this level, and keeps the microphone
# muted this long after the last audible frame.
GATE_SPEAKER_DBFS = -55.0
DEFAULT_HANGOVER_MS = 300
# Audible playback the canceller hears before the user may talk over the assistant.
DEFAULT_LEARNING_MS = 2000


class EchoMode(str, Enum):
    """What ``--echo`` asks for."""

    AUTO = "auto"  # cancel when speexdsp is available, else gate
    CANCEL = "cancel"  # cancel, or fail with the command that installs speexdsp
    GATE = "gate"  # half duplex
    OFF = "off"  # nothing (headphones)


class EchoProcessor(Protocol):
    """Takes one frame of microphone and played samples (16 kHz int16) and returns the frame to send."""

    name: str

    def process(self, captured: np.ndarray, reference: np.ndarray) -> np.ndarray: ...


class HalfDuplexGate:
    """Mutes the microphone while the reference is audible and ``hangover_ms`` after.

    It counts frames, not wall-clock time, so it behaves identically in tests
    and on devices.
    """

    name = "half-duplex gate"

    def __init__(self, hangover_ms: int = DEFAULT_HANGOVER_MS, speaker_dbfs: float = GATE_SPEAKER_DBFS) -> None:
        self.hangover_frames = max(1, hangover_ms // FRAME_MS)
        self.speaker_dbfs = speaker_dbfs
        self._frames_since_audible = self.hangover_frames

    @property
    def muted(self) -> bool:
        return self._frames_since_audible < self.hangover_frames

    def audible(self, reference: np.ndarray) -> bool:
        """Whether the speaker plays something the microphone could hear."""
        return level_dbfs(reference) > self.speaker_dbfs

    def process(self, captured: np.ndarray, reference: np.ndarray) -> np.ndarray:
        if self.audible(reference):
            self._frames_since_audible = 0
        else:
            self._frames_since_audible = min(self._frames_since_audible + 1, self.hangover_frames)
        return np.zeros_like(captured) if self.muted else captured


class SpeexEchoCanceller:
    """speexdsp's adaptive echo canceller followed by its residual echo suppressor.

    The adaptive filter starts knowing nothing of the room: measured on the
    simulated room it removes about 2 dB of echo in the first second of
    playback, 11 dB in the second and 20-30 dB from then on. Until it has heard
    ``learning_ms`` of audible playback, a ``HalfDuplexGate`` mutes the
    microphone while the speaker plays, so the assistant never interrupts itself
    at the start of a session; after that the user can talk over it.
    """

    name = "speex echo canceller"

    def __init__(
        self, tail_ms: int = DEFAULT_TAIL_MS, suppress_residual: bool = True, learning_ms: int = DEFAULT_LEARNING_MS
    ) -> None:
        self._echo = SpeexEchoState(FRAME_SAMPLES, AEC_RATE * tail_ms // 1000, AEC_RATE)
        self._residual = SpeexPreprocessor(FRAME_SAMPLES, AEC_RATE, self._echo) if suppress_residual else None
        self._learning_ms = learning_ms
        self._guard = HalfDuplexGate()
        self._learning_frames_left = learning_ms // FRAME_MS

    @property
    def learning(self) -> bool:
        """Still muting while the speaker plays, until the echo path is learnt."""
        return self._learning_frames_left > 0

    def process(self, captured: np.ndarray, reference: np.ndarray) -> np.ndarray:
        cleaned = self._echo.cancel(captured, reference)
        if self._residual is not None:
            cleaned = self._residual.run(cleaned)
        if not self.learning:
            return cleaned
        if self._guard.audible(reference):
            self._learning_frames_left -= 1
        return self._guard.process(cleaned, reference)

    def reset(self) -> None:
        """Forget the echo path (the devices changed) and mute while relearning it."""
        self._echo.reset()
        self._learning_frames_left = self._learning_ms // FRAME_MS


class EchoUnavailable(RuntimeError):
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
