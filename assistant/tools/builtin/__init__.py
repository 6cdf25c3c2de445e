"""The built-in tools, each useful offline: time, calculator, timers, reminders, memory, document search.

Their names and response shapes are a contract other parts rely on (the
local backend routes everyday requests to them by name); see
docs/plugins.md.
"""

from __future__ import annotations

from assistant.knowledge.service import KnowledgeService
from assistant.tools.base import BaseTool
from assistant.tools.builtin.calculator import calculator_tools
from assistant.tools.builtin.current_time import CurrentTime
from assistant.tools.builtin.memory import Memory, MemoryStore
from assistant.tools.builtin.search_knowledge import search_knowledge_tool
from assistant.tools.builtin.timers import Timers
from assistant.tools.clock import Clock, SystemClock


def builtin_tools(*, clock: Clock | None = None, knowledge: KnowledgeService | None = None) -> list[BaseTool]:
    """Fresh instances of every built-in tool.

    Memory and ``search_knowledge`` share ``knowledge`` (by default the data
    dir's store), which opens on first use; whoever passes it closes it.
    """
    clock = clock or SystemClock()
    knowledge = knowledge or KnowledgeService()
    return [
        *CurrentTime(clock).tools(),
        *calculator_tools(),
        *Timers(clock).tools(),
        *Memory(MemoryStore(knowledge)).tools(),
        search_knowledge_tool(knowledge),
    ]


__all__ = ["builtin_tools"]
