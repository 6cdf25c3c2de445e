"""The conversation store on a Redis server, shared by every server process behind a load balancer.

``assistant serve --store redis://host:port/db`` keeps the three parts of
``stores.ConversationStore`` in one Redis server:

- resumption handles: one key per handle holding the saved session's JSON,
  expiring with the handle (``SET ... PX``), so any process can resume any
  conversation;
- late tool results: per conversation an owner key (which process and which
  session receive now), a list of results held while nobody does, and a
  marker that the conversation may still be resumed. Each process listens on
  its own pub/sub channel; a result is published to the owner's channel, or
  held when there is no owner or the owner's process is gone (a publish that
  nobody hears). Lua scripts make each step atomic, so a result can never
  slip between a session attaching and the list being read;
- session counts per key: a sorted set of slots scored by their expiry; each
  process renews its own slots, so the slots of a killed process run out by
  themselves instead of holding the key's limit for ever (``redis_counts``).

All three share one ``redis_connection.RedisConnection``. When Redis goes
away the conversations go on: the store logs one line,
handles are not promised (``StoreUnavailable``), late results reach only a
session on the same process, counts fall back to this process's. Every
command reconnects by itself, and the first that succeeds logs that the
store is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable
from dataclasses import dataclass

from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from assistant.protocol import FunctionResponse
from assistant.session.late import MAX_HELD_PER_CONVERSATION, LateResultRouter, Receiver
from assistant.session.redis_connection import (
    DEFAULT_PREFIX,
    RedisConnection,
    cancel_request_count,
    raise_if_cancel_was_swallowed,
    text_of,
)
from assistant.session.redis_counts import RedisSessionCounter
from assistant.session.resumption import (
    DEFAULT_HANDLE_TTL_S,
    ResumptionStore,
    SavedSession,
    StoreUnavailable,
)
from assistant.session.stores import ConversationStore

logger = logging.getLogger("assistant.session.redis")

RESUBSCRIBE_MAX_S = 5.0


class RedisResumptionStore(ResumptionStore):
    """Handles as keys that expire with them; the connection belongs to the ``RedisConversationStore``."""

    def __init__(self, connection: RedisConnection) -> None:
        self._redis = connection
        self._prefix = f"{connection.prefix}handle:"

    async def save(self, handle: str, saved: SavedSession, ttl_s: float) -> None:
        payload = saved.to_json()
        await self._redis.run(
            "save a resumption handle", lambda r: r.set(self._prefix + handle, payload, px=max(1, int(ttl_s * 1000)))
        )

    async def load(self, handle: str) -> SavedSession | None:
        payload = await self._redis.run("load a resumption handle", lambda r: r.get(self._prefix + handle))
        return SavedSession.from_json(text_of(payload)) if payload is not None else None

    async def delete(self, handle: str) -> None:
        await self._redis.run("delete a resumption handle", lambda r: r.delete(self._prefix + handle))

    async def reachable(self) -> bool:
        return await self._redis.ping()


# KEYS: owner, held, resumable. ARGV: response JSON, max held, hold ms for an orphan, channel prefix,
# conversation, an owner token known to be gone ("" when none).
# Returns 1 published, 2 held, 3 held after dropping the oldest, 0 nobody can come back for it.
_DELIVER = """
local owner = redis.call('GET', KEYS[1])
if owner then
  local node, token = string.match(owner, '^(%S+) (%S+)$')
  if token ~= ARGV[6] and redis.call('PUBLISH', ARGV[4] .. node, token .. ' ' .. ARGV[5] .. ' ' .. ARGV[1]) > 0 then
    return 1
  end
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
end
local ttl = redis.call('PTTL', KEYS[3])
if ttl <= 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ttl)
if redis.call('LLEN', KEYS[2]) > tonumber(ARGV[2]) then
  redis.call('LPOP', KEYS[2])
  return 3
end
return 2
"""

# KEYS: owner, held, resumable. ARGV: owner value, owner ms, "1" to reclaim only (after resubscribing).
# Returns the held results, oldest first, after an "ok" or "taken" marker.
_ATTACH = """
if ARGV[3] == '1' then
  local current = redis.call('GET', KEYS[1])
  if current and current ~= ARGV[1] then return {'taken'} end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[3])
local held = redis.call('LRANGE', KEYS[2], 0, -1)
redis.call('DEL', KEYS[2])
table.insert(held, 1, 'ok')
return held
"""

# KEYS: owner, held, resumable. ARGV: owner value, resumable ms ("" when it cannot be resumed).
_DETACH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[2] == '' then
  redis.call('DEL', KEYS[2], KEYS[3])
else
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[2])
end
return 1
"""


@dataclass(slots=True)
class _Attachment:
    conversation: str
    receiver: Receiver


class RedisLateResults(LateResultRouter):
    """Late results routed through Redis to whichever process holds the conversation now.

    ``hold_s`` is how long results are kept for a conversation whose process
    vanished without detaching (killed): the handle lifetime, since its
    client may still come back.
    """

    def __init__(self, connection: RedisConnection, hold_s: float = DEFAULT_HANDLE_TTL_S) -> None:
        self._redis = connection
        self._hold_ms = str(int(hold_s * 1000))
        self.node = secrets.token_hex(6)
        self._channel_prefix = f"{connection.prefix}late:node:"
        self._attached: dict[str, _Attachment] = {}  # by owner token
        self._tasks: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()
        client = connection.client
        self._deliver_script = client.register_script(_DELIVER)
        self._attach_script = client.register_script(_ATTACH)
        self._detach_script = client.register_script(_DETACH)

    def _keys(self, conversation: str) -> list[str]:
        base = f"{self._redis.prefix}late:{conversation}:"
        return [base + "owner", base + "held", base + "resumable"]

    def _owner(self, token: str) -> str:
        return f"{self.node} {token}"

    async def start(self) -> None:
        """Listen on this process's channel (and keep listening across Redis restarts)."""
        self._listener = asyncio.create_task(self._listen(), name="late-results-listener")

    async def aclose(self) -> None:
        tasks = [*self._tasks, *([self._listener] if self._listener else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def attach(self, conversation: str, receiver: Receiver) -> list[FunctionResponse]:
        token = secrets.token_hex(8)
        self._attached[token] = _Attachment(conversation, receiver)
        return await self._claim(token, conversation, reclaim=False)

    async def _claim(self, token: str, conversation: str, *, reclaim: bool) -> list[FunctionResponse]:
        args = [self._owner(token), self._hold_ms, "1" if reclaim else "0"]
        try:
            marker, *held = await self._redis.run(
                "attach a conversation's late results", lambda r: self._attach_script(self._keys(conversation), args)
            )
        except StoreUnavailable:
            return []  # results held in Redis meanwhile come with the next attach, or when it is back
        if marker != "ok":
            self._attached.pop(token, None)  # another process took the conversation over while Redis was away
        return [FunctionResponse.model_validate_json(item) for item in held]

    async def detach(self, conversation: str, receiver: Receiver, resumable_for_s: float | None) -> None:
        token = next((t for t, a in self._attached.items() if a.receiver is receiver), None)
        if token is None:
            return
        del self._attached[token]
        args = [self._owner(token), "" if resumable_for_s is None else str(max(1, int(resumable_for_s * 1000)))]
        with contextlib.suppress(StoreUnavailable):
            await self._redis.run(
                "detach a conversation's late results", lambda r: self._detach_script(self._keys(conversation), args)
            )

    async def deliver(self, conversation: str, response: FunctionResponse, gone_token: str = "") -> None:
        payload = response.model_dump_json(exclude_none=True)
        args: list[str | int] = [
            payload,
            MAX_HELD_PER_CONVERSATION,
            self._hold_ms,
            self._channel_prefix,
            conversation,
            gone_token,
        ]
        try:
            outcome = await self._redis.run(
                "deliver a late tool result", lambda r: self._deliver_script(self._keys(conversation), args)
            )
        except StoreUnavailable:
            await self._deliver_here(conversation, response)
            return
        if outcome == 0:
            logger.info("conversation %s ended; the late result of %s has nobody to go to", conversation, response.name)
        elif outcome >= 2:
            logger.info("held the late result of %s until conversation %s resumes", response.name, conversation)
            if outcome == 3:
                logger.warning("conversation %s holds too many late results; dropped the oldest", conversation)

    async def _deliver_here(self, conversation: str, response: FunctionResponse) -> None:
        """With Redis away, a session of this process that holds the conversation still hears the result."""
        receivers = [a.receiver for a in self._attached.values() if a.conversation == conversation]
        if not receivers:
            logger.warning(
                "the late result of %s for conversation %s is lost: the store is unreachable",
                response.name,
                conversation,
            )
            return
        await receivers[-1](response)

    async def held(self, conversation: str) -> int:
        key = self._keys(conversation)[1]
        return int(await self._redis.run("count held late results", lambda r: r.llen(key)))

    async def _listen(self) -> None:
        channel = self._channel_prefix + self.node
        pause = 0.2
        while True:
            pubsub: PubSub = self._redis.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(channel)
                self._redis.succeeded()
                await self._reclaim_all()
                self.listening.set()
                pause = 0.2
                while True:
                    cancel_requests = cancel_request_count()
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    raise_if_cancel_was_swallowed(cancel_requests)
                    if message is not None and message["type"] == "message":
                        self._dispatch(message["data"])
            except (RedisError, OSError) as exc:
                self.listening.clear()
                self._redis.failed("listen for late tool results", exc)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            await asyncio.sleep(pause)
            pause = min(pause * 2, RESUBSCRIBE_MAX_S)

    async def _reclaim_all(self) -> None:
        """After (re)subscribing: results held while this process was not listening go to its sessions."""
        for token, attachment in list(self._attached.items()):
            for response in await self._claim(token, attachment.conversation, reclaim=True):
                self._spawn(attachment.receiver(response))

    def _dispatch(self, data: str) -> None:
        try:
            token, conversation, payload = data.split(" ", 2)
            response = FunctionResponse.model_validate_json(payload)
        except ValueError:  # pydantic's ValidationError is one: the listener must outlive a stray message
            logger.warning("ignored a message on the late results channel that is not a late result")
            return
        attachment = self._attached.get(token)
        if attachment is not None:
            self._spawn(attachment.receiver(response))
        else:  # that session ended as the result was on its way: hold it (or pass it to a newer owner)
            self._spawn(self.deliver(conversation, response, gone_token=token))

    def _spawn(self, work: Awaitable[None]) -> None:
        """Deliver off the listener, so one session's full queue never holds up the others' results."""

        async def run() -> None:
            try:
                await work
            except Exception:
                logger.exception("delivering a late tool result failed")

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class RedisConversationStore(ConversationStore):
    """The three parts on one Redis connection; it connects when first used, and again after an outage."""

    def __init__(
        self, url: str, *, prefix: str = DEFAULT_PREFIX, handle_ttl_s: float = DEFAULT_HANDLE_TTL_S
    ) -> None:
        self.connection = RedisConnection(url, prefix=prefix)
        self.redis_late_results = RedisLateResults(self.connection, hold_s=handle_ttl_s)
        self.redis_session_counts = RedisSessionCounter(self.connection)
        super().__init__(RedisResumptionStore(self.connection), self.redis_late_results, self.redis_session_counts)

    async def start(self) -> None:
        await self.redis_late_results.start()
        await self.redis_session_counts.start()

    async def aclose(self) -> None:
        await self.redis_late_results.aclose()
        await self.redis_session_counts.aclose()
        await self.connection.aclose()
