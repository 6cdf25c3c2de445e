"""What the user said that a new upstream connection may not have heard.

A resumed Gemini session holds what its handle captured, no more: anything
sent after that handle was issued, and anything sent while a connection was
down, must be sent again or the user's words are lost. A fresh session with
no handle is re-seeded with the history of completed turns, so it needs the
input since the last completed turn. The buffer keeps both marks and trims
what neither needs. Audio is bounded (the newest seconds are kept), and so
is everything else in bytes (a client sending megabytes of text without
ending its turn loses the oldest of it from the replay, not the server its
memory); frames are not kept at all: the newest frame is sent again on its
own.
"""

from __future__ import annotations

from collections import deque

from assistant.protocol import (
    ActivityEnd,
    ActivityStart,
    AudioChunk,
    AudioStreamEnd,
    ClientEvent,
    ClientTurns,
    TextInput,
)
from assistant.session.limits import DEFAULT_HISTORY_BYTES, approx_bytes

# Tool responses answer calls of a connection that is gone; context changes live in the setup.
# Durations are sums of float chunk lengths; this much over the bound is rounding, not audio.
ROUNDING_S = 1e-6
REPLAYABLE = (AudioChunk, TextInput, ActivityStart, ActivityEnd, AudioStreamEnd, ClientTurns)


class ReplayBuffer:
    """Client input in order, with a mark at the latest handle and at the latest completed turn."""

    def __init__(self, max_audio_s: float, max_bytes: int = DEFAULT_HISTORY_BYTES) -> None:
        self.max_audio_s = max_audio_s
        self.max_bytes = max_bytes  # of what is not audio: text, turns, activity signals
        self._events: deque[tuple[ClientEvent, int]] = deque()
        self._first = 0  # position of _events[0] in the whole stream
        self._handle_mark = 0
        self._turn_mark = 0
        self._has_handle = False
        self._audio_s = 0.0
        self._bytes = 0
        self.dropped_audio_s = 0.0
        self.dropped_inputs = 0

    @property
    def _end(self) -> int:
        return self._first + len(self._events)

    def add(self, event: ClientEvent) -> None:
        """Keep ``event`` if a new connection would need it."""
        if not isinstance(event, REPLAYABLE):
            return
        weight = 0 if isinstance(event, AudioChunk) else approx_bytes(event)
        self._events.append((event, weight))
        self._bytes += weight
        if isinstance(event, AudioChunk):
            self._audio_s += event.duration_s
            while self._audio_s > self.max_audio_s + ROUNDING_S:
                dropped = self._pop()
                if isinstance(dropped, AudioChunk):
                    self.dropped_audio_s += dropped.duration_s
        while self._bytes > self.max_bytes:
            dropped = self._pop()
            self.dropped_inputs += 1
            if isinstance(dropped, AudioChunk):
                self.dropped_audio_s += dropped.duration_s

    def handle_issued(self) -> None:
        """Gemini issued a resumable handle: what came before is in the upstream's saved state."""
        self._handle_mark = self._end
        self._has_handle = True
        self._trim()

    def turn_completed(self) -> None:
        """A turn ended: what came before is in the history used for re-seeding."""
        self._turn_mark = self._end
        self._trim()

    def since_handle(self) -> list[ClientEvent]:
        return self._since(self._handle_mark)

    def since_turn(self) -> list[ClientEvent]:
        return self._since(self._turn_mark)

    def _since(self, mark: int) -> list[ClientEvent]:
        start = max(mark, self._first) - self._first
        return [event for event, _ in list(self._events)[start:]]

    def _trim(self) -> None:
        keep_from = min(self._handle_mark, self._turn_mark) if self._has_handle else self._turn_mark
        while self._events and self._first < keep_from:
            self._pop()

    def _pop(self) -> ClientEvent:
        event, weight = self._events.popleft()
        self._first += 1
        self._bytes -= weight
        if isinstance(event, AudioChunk):
            self._audio_s -= event.duration_s
        return event
