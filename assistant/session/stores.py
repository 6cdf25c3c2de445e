"""The conversation store: everything a conversation keeps between connections, chosen once per server.

Three parts travel together because they must be shared together: the
resumption handles (a client may come back on any process), the late tool
results (a timer may fire on a process the client has left) and the session
counts per key (a limit counts every process). One server keeps them in
SQLite and memory (``local_store``); servers behind a load balancer share a
Redis server (``redis_store.open_redis_store``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from assistant.session.counts import MemorySessionCounter, SessionCounter
from assistant.session.late import LateResultRouter, LateResults
from assistant.session.resumption import ResumptionStore


@dataclass(slots=True)
class ConversationStore:
    """The three parts; ``start`` before serving, ``aclose`` after (the server closes ``resumption``)."""

    resumption: ResumptionStore
    late_results: LateResultRouter = field(default_factory=LateResults)
    session_counts: SessionCounter = field(default_factory=MemorySessionCounter)

    async def start(self) -> None:
        """Connect what needs connecting; the local store has nothing to do."""

    async def aclose(self) -> None:
        """Release what ``start`` took; the local store has nothing to release."""
