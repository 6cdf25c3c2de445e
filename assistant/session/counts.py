"""How many sessions each access key holds, for a per-key session limit.

A limit per key means nothing once a deployment runs several server
processes unless they count together, so the count sits behind this seam:
``MemorySessionCounter`` counts in this process (one server),
``RedisSessionCounter`` (``redis_counts``) counts across every process that
shares a Redis server. The caller takes a slot before the session starts and
releases it when the session ends::

    slot = await counter.acquire(key_id, limit)
    if slot is None:
        ...  # refuse: the key holds ``limit`` sessions already
    try:
        await session.run()
    finally:
        await slot.release()

``key_id`` names the key without being it (a hash or a label): counters may
keep it in a shared store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class SessionSlot(ABC):
    """One counted session; ``release`` gives the place back (twice is harmless)."""

    @abstractmethod
    async def release(self) -> None:
        """The session ended."""


class SessionCounter(ABC):
    """Counts live sessions per key."""

    @abstractmethod
    async def acquire(self, key_id: str, limit: int) -> SessionSlot | None:
        """A slot for one more session of ``key_id``, or None when it holds ``limit`` already."""

    @abstractmethod
    async def count(self, key_id: str) -> int:
        """Sessions ``key_id`` holds now."""


class _MemorySlot(SessionSlot):
    def __init__(self, counts: dict[str, int], key_id: str) -> None:
        self._counts = counts
        self._key_id: str | None = key_id

    async def release(self) -> None:
        if self._key_id is None:
            return
        left = self._counts[self._key_id] - 1
        if left:
            self._counts[self._key_id] = left
        else:
            del self._counts[self._key_id]
        self._key_id = None


class MemorySessionCounter(SessionCounter):
    """Counts in this process; the default for one server."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    async def acquire(self, key_id: str, limit: int) -> SessionSlot | None:
        if self._counts.get(key_id, 0) >= limit:
            return None
        self._counts[key_id] = self._counts.get(key_id, 0) + 1
        return _MemorySlot(self._counts, key_id)

    async def count(self, key_id: str) -> int:
        return self._counts.get(key_id, 0)
