"""Bounded queues between a session's two ends, with one back-pressure rule.

When a reader lags (a stalled client, a slow backend), media gives way and
meaning never does: the oldest queued droppable item (audio, video) is
dropped and counted to make room, while control, text, tool and turn
messages wait for space instead. A queue full of messages that may not be
dropped makes its producer wait, which pushes back on whoever feeds it
(TCP for a client, the stream for a backend), so memory stays bounded.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class QueueClosed(Exception):
    """Raised by ``get`` once the queue is closed and drained."""


class FlowQueue(Generic[T]):
    """A single-consumer FIFO of at most ``maxsize`` items that sheds media first."""

    def __init__(self, maxsize: int, kind: Callable[[T], str] = lambda item: type(item).__name__) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self._kind = kind
        self._items: deque[tuple[T, bool]] = deque()
        self._droppable = 0
        self._closed = False
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self.dropped: Counter[str] = Counter()
        self.high_water = 0

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: T, *, droppable: bool = False) -> None:
        """Append ``item``; make room by dropping old media, else wait for the reader."""
        while len(self._items) >= self.maxsize and not self._closed:
            if self._droppable:
                self._drop_oldest_droppable()
                break
            self._writable.clear()
            await self._writable.wait()
        if self._closed:
            raise QueueClosed
        self._items.append((item, droppable))
        self._droppable += droppable
        self.high_water = max(self.high_water, len(self._items))
        self._readable.set()

    async def get(self) -> T:
        """Take the oldest item, waiting for one; ``QueueClosed`` once closed and empty."""
        while not self._items:
            if self._closed:
                raise QueueClosed
            self._readable.clear()
            await self._readable.wait()
        item, droppable = self._items.popleft()
        self._droppable -= droppable
        self._writable.set()
        return item

    def discard(self, predicate: Callable[[T], bool]) -> int:
        """Remove queued items that match (stale reply audio after a barge-in)."""
        kept = [(item, droppable) for item, droppable in self._items if not predicate(item)]
        removed = len(self._items) - len(kept)
        if removed:
            self._items = deque(kept)
            self._droppable = sum(droppable for _, droppable in kept)
            self._writable.set()
        return removed

    def close(self) -> None:
        """Wake everyone; ``get`` drains what is queued, then raises ``QueueClosed``."""
        self._closed = True
        self._readable.set()
        self._writable.set()

    def _drop_oldest_droppable(self) -> None:
        for index, (item, droppable) in enumerate(self._items):
            if droppable:
                del self._items[index]
                self._droppable -= 1
                self.dropped[self._kind(item)] += 1
                return
