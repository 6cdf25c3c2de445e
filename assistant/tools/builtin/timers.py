"""``set_timer`` and ``set_reminder``: non-blocking tools that speak up when they fire.

Each answers at once ("started", with when it will fire) and again, for the
same call id, when the time is up: that second response carries
``scheduling: INTERRUPT`` so the model says it even mid-sentence. Waiting is
done on an injectable ``Clock``, so tests fire a five-minute timer at once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from assistant.tools.base import BaseTool, CallContext, ToolError
from assistant.tools.clock import Clock, SystemClock
from assistant.tools.decorator import FunctionTool

MAX_SECONDS = 7 * 24 * 3600


def _whole(seconds: float) -> float | int:
    return int(seconds) if float(seconds).is_integer() else seconds


class Timers:
    """The timer and reminder tools over one clock."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()

    def _start(self, seconds: float, fired: dict[str, Any], context: CallContext) -> str:
        """Schedule the "fired" response; the ISO time (local zone) it will fire at."""
        if not 0 < seconds <= MAX_SECONDS:
            raise ToolError(f"the duration must be more than 0 and at most {MAX_SECONDS} seconds (a week)")
        fires_at = (self.clock.now() + timedelta(seconds=seconds)).astimezone()
        context.follow_up(self._after(seconds, fired), scheduling="INTERRUPT")
        return fires_at.isoformat(timespec="seconds")

    async def _after(self, seconds: float, fired: dict[str, Any]) -> dict[str, Any]:
        await self.clock.sleep(seconds)
        return fired

    async def set_timer(self, seconds: float, context: CallContext, label: str = "timer") -> dict[str, Any]:
        """Start a countdown timer; you will be told when it goes off, and should say so.

        Args:
            seconds: How long the timer runs, in seconds (5 minutes is 300).
            label: What the timer is for, e.g. "tea".
        """
        fires_at = self._start(seconds, {"status": "fired", "label": label}, context)
        return {"status": "started", "label": label, "seconds": _whole(seconds), "fires_at": fires_at}

    async def set_reminder(self, text: str, seconds: float, context: CallContext) -> dict[str, Any]:
        """Remind the user of something after a delay; you will be told when to say it.

        Args:
            text: What to remind the user of, e.g. "call mum".
            seconds: How long from now, in seconds (an hour is 3600).
        """
        fires_at = self._start(seconds, {"status": "fired", "text": text}, context)
        return {"status": "started", "text": text, "seconds": _whole(seconds), "fires_at": fires_at}

    def tools(self) -> list[BaseTool]:
        return [
            FunctionTool(self.set_timer, behavior="NON_BLOCKING", timeout=5),
            FunctionTool(self.set_reminder, behavior="NON_BLOCKING", timeout=5),
        ]
