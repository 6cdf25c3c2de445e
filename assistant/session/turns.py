"""What a session counts: its totals for the log, and the clock of each turn."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from assistant import metrics


@dataclass(slots=True)
class SessionStats:
    """Counters logged when the session ends (and read by tests and benchmarks)."""

    messages_in: int = 0
    messages_out: int = 0
    audio_in_s: float = 0.0
    audio_out_s: float = 0.0
    turns: int = 0
    flushed_on_interrupt: int = 0


class TurnClock:
    """Times each turn: end of user input to first reply, for the log."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.user_done_at: float | None = None
        self.first_reply_at: float | None = None
        self.reply_audio_s = 0.0
        self.tool_calls = 0
        self.interrupted = False

    def user_finished(self) -> None:
        self.user_done_at = self._clock()
        self.first_reply_at = None

    def reply(self, audio_s: float = 0.0) -> None:
        if self.first_reply_at is None:
            self.first_reply_at = self._clock()
        self.reply_audio_s += audio_s

    def in_flight(self) -> bool:
        """The user finished speaking or a reply began, and the turn has not completed yet."""
        return self.user_done_at is not None or self.first_reply_at is not None

    def first_reply_s(self) -> float | None:
        """Seconds from the end of the user's input to the first reply, when both happened this turn."""
        if self.user_done_at is None or self.first_reply_at is None:
            return None
        return self.first_reply_at - self.user_done_at

    def observe(self) -> None:
        """Count the turn just finished in the process's metrics (before ``summary`` resets the clock)."""
        metrics.TURNS.labels("interrupted" if self.interrupted else "complete").inc()
        latency_s = self.first_reply_s()
        if latency_s is not None:
            metrics.STAGE_LATENCY.labels("first_reply").observe(latency_s)

    def summary(self, turn: int) -> str:
        """One log line for the turn just finished; resets for the next."""
        latency_s = self.first_reply_s()
        latency = "n/a" if latency_s is None else f"{latency_s * 1000:.0f} ms"
        text = (
            f"turn {turn} {'interrupted' if self.interrupted else 'complete'}: "
            f"first reply {latency} after end of input, "
            f"{self.reply_audio_s:.1f} s reply audio, {self.tool_calls} tool calls"
        )
        self.user_done_at = self.first_reply_at = None
        self.reply_audio_s = 0.0
        self.tool_calls = 0
        self.interrupted = False
        return text
