"""Session counts per key in Redis, shared by every server process (part of ``redis_store``).

A sorted set of slots per key, scored by their expiry; each process renews
its own slots, so the slots of a killed process run out by themselves
instead of holding the key's limit for ever. While Redis is away the counts
fall back to this process's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import time
from typing import Any

from redis.asyncio import Redis

from assistant.session.counts import MemorySessionCounter, SessionCounter, SessionSlot
from assistant.session.redis_connection import RedisConnection
from assistant.session.resumption import StoreUnavailable

SLOT_LEASE_S = 30.0  # a killed process's session slots free themselves after this long


# KEYS: the key's slot set. ARGV: now ms, limit, slot expiry ms, slot name, set lifetime ms.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""


class _RedisSlot(SessionSlot):
    def __init__(self, counter: RedisSessionCounter, key: str, name: str) -> None:
        self._counter = counter
        self.key = key
        self.name = name

    async def release(self) -> None:
        await self._counter._release(self)


class RedisSessionCounter(SessionCounter):
    """Session slots per key in Redis, renewed by their process; this process's count while Redis is away."""

    def __init__(self, connection: RedisConnection, lease_s: float = SLOT_LEASE_S) -> None:
        self._redis = connection
        self._lease_ms = int(lease_s * 1000)
        self._slots: set[_RedisSlot] = set()
        self._fallback = MemorySessionCounter()
        self._acquire_script = connection.client.register_script(_ACQUIRE)
        self._renewer: asyncio.Task[None] | None = None

    def _key(self, key_id: str) -> str:
        digest = hashlib.sha256(key_id.encode()).hexdigest()[:24]  # the store never holds the key itself
        return f"{self._redis.prefix}sessions:{digest}"

    async def start(self) -> None:
        self._renewer = asyncio.create_task(self._renew(), name="session-slot-renewer")

    async def aclose(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)

    async def acquire(self, key_id: str, limit: int) -> SessionSlot | None:
        key, name = self._key(key_id), secrets.token_hex(8)
        now = int(time.time() * 1000)
        args: list[str | int] = [now, limit, now + self._lease_ms, name, self._lease_ms * 2]
        try:
            granted = await self._redis.run("count a key's sessions", lambda r: self._acquire_script([key], args))
        except StoreUnavailable:
            return await self._fallback.acquire(key_id, limit)
        if not granted:
            return None
        slot = _RedisSlot(self, key, name)
        self._slots.add(slot)
        return slot

    async def _release(self, slot: _RedisSlot) -> None:
        if slot not in self._slots:
            return
        self._slots.discard(slot)
        with contextlib.suppress(StoreUnavailable):  # then it runs out with its lease
            await self._redis.run("release a session slot", lambda r: r.zrem(slot.key, slot.name))

    async def count(self, key_id: str) -> int:
        key, now = self._key(key_id), int(time.time() * 1000)
        return int(await self._redis.run("count a key's sessions", lambda r: r.zcount(key, now, "+inf")))

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self._lease_ms / 3000)
            if self._slots:
                with contextlib.suppress(StoreUnavailable):
                    await self._redis.run("renew session slots", self._renew_all)

    async def _renew_all(self, client: Redis) -> Any:
        expiry = int(time.time() * 1000) + self._lease_ms
        async with client.pipeline(transaction=False) as pipe:
            for slot in list(self._slots):
                pipe.zadd(slot.key, {slot.name: expiry}, xx=True)
                pipe.pexpire(slot.key, self._lease_ms * 2)
            return await pipe.execute()
