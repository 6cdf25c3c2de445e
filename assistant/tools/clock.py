"""Time for tools that wait: the real clock in the server, a manual one in tests.

Timers and reminders sleep through ``Clock.sleep`` and stamp times with
``Clock.now``, so a test can fire a five-minute timer by advancing a clock
instead of waiting five minutes.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return after ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """Wall-clock time for stamps; the event loop's monotonic clock for waiting."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
