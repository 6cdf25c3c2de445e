"""The built-in tools, each useful offline: time, calculator, timers, reminders, memory.

Their names and response shapes are a contract other parts rely on (the
local backend routes everyday requests to them by name); see
docs/plugins.md.
"""

from __future__ import annotations

from pathlib import Path

from assistant.paths import data_dir
from assistant.tools.base import BaseTool
from assistant.tools.builtin.calculator import calculator_tools
from assistant.tools.builtin.current_time import CurrentTime
from assistant.tools.builtin.memory import Memory, MemoryStore
from assistant.tools.builtin.timers import Timers
from assistant.tools.clock import Clock, SystemClock

MEMORY_FILE = "memory.sqlite3"


def builtin_tools(
    *, clock: Clock | None = None, memory: MemoryStore | None = None, memory_path: Path | None = None
) -> list[BaseTool]:
    """Fresh instances of every built-in tool; the memory store opens on first use."""
    clock = clock or SystemClock()
    store = memory or MemoryStore(memory_path or data_dir() / MEMORY_FILE)
    return [
        *CurrentTime(clock).tools(),
        *calculator_tools(),
        *Timers(clock).tools(),
        *Memory(store).tools(),
    ]


__all__ = ["MEMORY_FILE", "builtin_tools"]
