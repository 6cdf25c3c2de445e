"""Which camera and screen frames are worth sending to Gemini.

Each frame costs about 258 tokens and Gemini looks at about one a second, so
a client that streams at 5 or 30 fps only burns quota and context. Frames
pass a rate cap and a change gate. The cap keeps to a grid of one frame per
interval, with a little slack, so a 1 fps client with timer jitter is not cut
to one frame in two, while the long-run rate never exceeds the cap. The gate
is a plain function of (last frame sent, new frame) so a perceptual one (the
vision package) can replace the byte comparison.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from assistant.protocol import VideoFrame

ChangeGate = Callable[[VideoFrame, VideoFrame], bool]

# A frame this early (as a fraction of the interval) still counts as on time.
JITTER_SLACK = 0.1


def bytes_changed(previous: VideoFrame, frame: VideoFrame) -> bool:
    """The simplest change gate: any difference in the encoded image."""
    return previous.image != frame.image


class FrameLimiter:
    """Admits at most ``max_fps`` frames a second, and only frames that changed."""

    def __init__(
        self,
        max_fps: float,
        clock: Callable[[], float] = time.monotonic,
        changed: ChangeGate = bytes_changed,
    ) -> None:
        if max_fps <= 0:
            raise ValueError("max_fps must be positive")
        self.interval = 1.0 / max_fps
        self._clock = clock
        self._changed = changed
        self._last: VideoFrame | None = None
        self._next_due: float | None = None
        self.sent = 0
        self.dropped = 0

    def admit(self, frame: VideoFrame) -> bool:
        """Whether to send ``frame`` now; counts what it drops."""
        now = self._clock()
        too_early = self._next_due is not None and now < self._next_due - JITTER_SLACK * self.interval
        if too_early or (self._last is not None and not self._changed(self._last, frame)):
            self.dropped += 1
            return False
        due = self._next_due if self._next_due is not None else now
        self._next_due = max(due, now) + self.interval
        self._last = frame
        self.sent += 1
        return True
