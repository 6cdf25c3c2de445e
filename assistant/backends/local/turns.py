"""Turn-taking: when the user starts speaking, pauses, resumes and is done.

``TurnDetector`` is a pure state machine over VAD probabilities stamped with
audio time (seconds of input audio, not wall time), so a test feeds it a
timeline and gets the same events every run, with no sleeps. It follows the
four states most voice stacks use (quiet, starting, speaking, paused) with
hysteresis: speech starts above one threshold and pauses below a lower one.

A pause is reported the moment it begins (``SpeechPaused``), not only when the
silence has lasted long enough to end the turn (``TurnEnded``): the session
uses that window to transcribe and even prepare the reply speculatively, and
throws the work away if the user carries on (``SpeechResumed``). When that
speculative transcript is already a complete request, the session says so
(``sounds_complete``) and a shorter silence ends the turn; when the voice
sounds finished too (an end-of-turn model, see ``turn_model``), a shorter one
still. The voice alone never shortens the wait: on spoken prompts the model
also calls "Set a timer for" finished.

``TurnSettings.from_config`` maps the Live ``realtimeInputConfig`` onto the
thresholds: start sensitivity and prefix padding decide how much speech
commits a start, end sensitivity and silence duration when a pause ends the
turn.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from assistant.protocol.models import RealtimeInputConfig

DEFAULT_SILENCE_MS = 500
DEFAULT_EAGER_MS = 300  # silence that ends a turn whose words already make a complete request
DEFAULT_AGREED_MS = 200  # ...and whose voice sounds finished too (README: its false cut-ins)
# Start of speech: probability above which a frame is speech, and how much speech commits a start.
START_THRESHOLD = {"START_SENSITIVITY_HIGH": 0.5, "START_SENSITIVITY_LOW": 0.7}
START_SPEECH_MS = {"START_SENSITIVITY_HIGH": 60, "START_SENSITIVITY_LOW": 200}
# End of speech: probability below which a frame is silence (lower: harder to end).
END_THRESHOLD = {"END_SENSITIVITY_HIGH": 0.35, "END_SENSITIVITY_LOW": 0.15}
DEFAULT_START = "START_SENSITIVITY_HIGH"
DEFAULT_END = "END_SENSITIVITY_HIGH"


@dataclass(frozen=True, slots=True)
class TurnSettings:
    """How the session takes turns; ``automatic`` False means activityStart/End decide."""

    automatic: bool = True
    start_threshold: float = START_THRESHOLD[DEFAULT_START]
    end_threshold: float = END_THRESHOLD[DEFAULT_END]
    start_speech_s: float = START_SPEECH_MS[DEFAULT_START] / 1000
    silence_s: float = DEFAULT_SILENCE_MS / 1000
    eager_silence_s: float | None = None
    agreed_silence_s: float | None = None
    interrupts: bool = True

    @classmethod
    def from_config(
        cls,
        config: RealtimeInputConfig | None,
        default_silence_ms: int = DEFAULT_SILENCE_MS,
        eager_ms: int = 0,
        agreed_ms: int = 0,
    ) -> TurnSettings:
        """Settings for a session's ``realtimeInputConfig`` (None: the defaults).

        ``eager_ms`` and ``agreed_ms`` (0: off) apply only when the client did
        not set a silence duration: a client that asked for one gets exactly
        that. ``agreed_ms`` needs ``eager_ms``: the voice only confirms words.
        """
        detection = config.automatic_activity_detection if config else None
        start = (detection.start_of_speech_sensitivity if detection else None) or DEFAULT_START
        end = (detection.end_of_speech_sensitivity if detection else None) or DEFAULT_END
        start = start if start in START_THRESHOLD else DEFAULT_START
        end = end if end in END_THRESHOLD else DEFAULT_END
        prefix_ms = detection.prefix_padding_ms if detection and detection.prefix_padding_ms is not None else None
        silence_ms = detection.silence_duration_ms if detection and detection.silence_duration_ms else None
        return cls(
            automatic=not (detection and detection.disabled),
            start_threshold=START_THRESHOLD[start],
            end_threshold=END_THRESHOLD[end],
            start_speech_s=(prefix_ms if prefix_ms is not None else START_SPEECH_MS[start]) / 1000,
            silence_s=(silence_ms if silence_ms is not None else default_silence_ms) / 1000,
            eager_silence_s=eager_ms / 1000 if eager_ms and silence_ms is None else None,
            agreed_silence_s=agreed_ms / 1000 if agreed_ms and eager_ms and silence_ms is None else None,
            interrupts=not (config and config.activity_handling == "NO_INTERRUPTION"),
        )


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """Enough speech to commit a start; ``at`` is where the speech began."""

    at: float


@dataclass(frozen=True, slots=True)
class SpeechPaused:
    """Speech stopped at ``at``; the turn ends if the silence lasts."""

    at: float


@dataclass(frozen=True, slots=True)
class SpeechResumed:
    """Speech came back before the pause ended the turn."""

    at: float


@dataclass(frozen=True, slots=True)
class TurnEnded:
    """The user is done: speech ended at ``speech_end``, decided at ``at``."""

    speech_end: float
    at: float


TurnEvent = SpeechStarted | SpeechPaused | SpeechResumed | TurnEnded


class TurnState(enum.Enum):
    QUIET = "quiet"
    STARTING = "starting"
    SPEAKING = "speaking"
    PAUSED = "paused"


class TurnDetector:
    """Turns VAD probabilities on an audio timeline into turn events."""

    def __init__(self, settings: TurnSettings) -> None:
        self.settings = settings
        self.state = TurnState.QUIET
        self._candidate_start = 0.0
        self._speech_run = 0.0
        self._pause_start = 0.0
        self._complete = False
        self._voice_agrees = False

    @property
    def user_active(self) -> bool:
        """Whether the user holds the floor (speaking, or in a pause that may not end the turn)."""
        return self.state in (TurnState.SPEAKING, TurnState.PAUSED)

    def push(self, probability: float, start: float, duration: float) -> list[TurnEvent]:
        """Feed one frame that began at ``start`` seconds of audio and lasted ``duration``."""
        s = self.settings
        end = start + duration
        if self.state is TurnState.QUIET:
            if probability >= s.start_threshold:
                self.state = TurnState.STARTING
                self._candidate_start = start
                self._speech_run = duration
                return self._maybe_started()
            return []
        if self.state is TurnState.STARTING:
            if probability >= s.end_threshold:
                self._speech_run += duration
                return self._maybe_started()
            self.state = TurnState.QUIET
            return []
        if self.state is TurnState.SPEAKING:
            if probability < s.end_threshold:
                self.state = TurnState.PAUSED
                self._pause_start = start
                return self._maybe_ended(end) or [SpeechPaused(start)]
            return []
        # PAUSED
        if probability >= s.start_threshold:
            self.state = TurnState.SPEAKING
            self._complete = self._voice_agrees = False
            return [SpeechResumed(start)]
        return self._maybe_ended(end)

    def sounds_complete(self, voice_agrees: bool = False) -> None:
        """The words so far make a complete request: the current pause may end the turn sooner.

        The session says so when the speculative transcript of a pause is a
        whole question or a tool request with all its arguments, and
        ``voice_agrees`` when the end-of-turn model heard a finished voice too;
        it holds until the user speaks again.
        """
        if self.state is TurnState.PAUSED:
            self._complete = True
            self._voice_agrees = voice_agrees

    def flush(self, at: float) -> list[TurnEvent]:
        """The audio stream paused: end a turn in progress now."""
        self._complete = self._voice_agrees = False
        if self.state is TurnState.SPEAKING:
            self.state = TurnState.QUIET
            return [TurnEnded(at, at)]
        if self.state is TurnState.PAUSED:
            self.state = TurnState.QUIET
            return [TurnEnded(self._pause_start, at)]
        self.state = TurnState.QUIET
        return []

    def _maybe_started(self) -> list[TurnEvent]:
        if self._speech_run + 1e-9 >= self.settings.start_speech_s:
            self.state = TurnState.SPEAKING
            return [SpeechStarted(self._candidate_start)]
        return []

    def _maybe_ended(self, now: float) -> list[TurnEvent]:
        s = self.settings
        silence = s.silence_s
        if self._complete and s.eager_silence_s is not None:
            silence = min(silence, s.eager_silence_s)
            if self._voice_agrees and s.agreed_silence_s is not None:
                silence = min(silence, s.agreed_silence_s)
        if now - self._pause_start + 1e-9 >= silence:
            self.state = TurnState.QUIET
            self._complete = self._voice_agrees = False
            return [TurnEnded(self._pause_start, now)]
        return []
