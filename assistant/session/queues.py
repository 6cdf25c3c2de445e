"""Bounded queues between a session's two ends, with one back-pressure rule.

Each queue is bounded twice: in items, and in bytes as its ``size``
function weighs them (PCM for audio, the encoded image for a frame, the
text of a turn), because a queue of small audio chunks and a queue of 8 MiB
messages are not the same risk. An item larger than the whole byte budget
still gets in when the queue is empty, so nothing deadlocks.

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
    """A single-consumer FIFO of at most ``maxsize`` items and ``max_bytes`` bytes that sheds media first."""

    def __init__(
        self,
        maxsize: int,
        kind: Callable[[T], str] = lambda item: type(item).__name__,
        *,
        max_bytes: int | None = None,
        size: Callable[[T], int] = lambda item: 0,
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self._kind = kind
        self._size = size
        self._items: deque[tuple[T, bool, int]] = deque()
        self._droppable = 0
        self.bytes = 0
        self._closed = False
        self._getting = False  # the consumer waits in ``get`` for an item
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self.dropped: Counter[str] = Counter()
        self.high_water = 0
        self.high_water_bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def consumer_idle(self) -> bool:
        """The queue is open and empty and its consumer waits in ``get``: done with everything put before.

        An item handed to the consumer's destination directly now (write-through)
        comes after all earlier ones, as it would through the queue.
        """
        return self._getting and not self._items and not self._closed

    async def put(self, item: T, *, droppable: bool = False) -> None:
        """Append ``item``; make room by dropping old media, else wait for the reader."""
        while not self.put_nowait(item, droppable=droppable):
            self._writable.clear()
            await self._writable.wait()

    def put_nowait(self, item: T, *, droppable: bool = False) -> bool:
        """Append ``item`` where that needs no waiting (room, or old media dropped to make it); else False.

        An empty queue always takes one item, so a producer that found the
        consumer idle (``consumer_idle``) never gets False.
        """
        if self._closed:
            raise QueueClosed
        weight = self._size(item)
        while self._full(weight):
            if not self._droppable:
                return False
            self._drop_oldest_droppable()
        self._items.append((item, droppable, weight))
        self._droppable += droppable
        self.bytes += weight
        self.high_water = max(self.high_water, len(self._items))
        self.high_water_bytes = max(self.high_water_bytes, self.bytes)
        self._readable.set()
        return True

    def _full(self, weight: int) -> bool:
        """No room for an item of ``weight`` bytes (an empty queue always has room for one)."""
        if not self._items:
            return False
        return len(self._items) >= self.maxsize or (self.max_bytes is not None and self.bytes + weight > self.max_bytes)

    async def get(self) -> T:
        """Take the oldest item, waiting for one; ``QueueClosed`` once closed and empty."""
        while not self._items:
            if self._closed:
                raise QueueClosed
            self._readable.clear()
            self._getting = True
            try:
                await self._readable.wait()
            finally:
                self._getting = False
        item, droppable, weight = self._items.popleft()
        self._droppable -= droppable
        self.bytes -= weight
        self._writable.set()
        return item

    def discard(self, predicate: Callable[[T], bool]) -> int:
        """Remove queued items that match (stale reply audio after a barge-in)."""
        kept = [entry for entry in self._items if not predicate(entry[0])]
        removed = len(self._items) - len(kept)
        if removed:
            self._items = deque(kept)
            self._droppable = sum(droppable for _, droppable, _ in kept)
            self.bytes = sum(weight for _, _, weight in kept)
            self._writable.set()
        return removed

    def close(self) -> None:
        """Wake everyone; ``get`` drains what is queued, then raises ``QueueClosed``."""
        self._closed = True
        self._readable.set()
        self._writable.set()

    def _drop_oldest_droppable(self) -> None:
        for index, (item, droppable, weight) in enumerate(self._items):
            if droppable:
                del self._items[index]
                self._droppable -= 1
                self.bytes -= weight
                self.dropped[self._kind(item)] += 1
                return
