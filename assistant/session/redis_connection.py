"""The process's one Redis connection, shared by the conversation store's three parts (``redis_store``).

Every command goes through ``RedisConnection.run``: it gives up after a
short timeout, turns Redis's errors into ``StoreUnavailable``, and logs the
two lines of an outage (when it starts and when it ends).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from assistant import metrics
from assistant.session.resumption import StoreUnavailable

logger = logging.getLogger("assistant.session.redis")

DEFAULT_PREFIX = "assistant:"
COMMAND_TIMEOUT_S = 1.0  # a turn waits at most this long for a store that went away
T = TypeVar("T")


def redacted(url: str) -> str:
    """``url`` without its password, for log lines."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def text_of(value: str | bytes) -> str:
    """A reply as text (the client decodes replies; this keeps the type checker sure of it)."""
    return value if isinstance(value, str) else value.decode()


def cancel_request_count() -> int:
    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


def raise_if_cancel_was_swallowed(requests_before: int) -> None:
    """Stop a task whose cancellation redis-py swallowed.

    redis-py 8.1's asyncio client returns normally from a command cancelled at
    the wrong moment (seen on about half of cancellations landing inside a
    command), leaving the task running with the cancellation pending. A
    session ending while it saved a handle then went on reading its backend
    forever, and its connection never closed. The request count tells.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling() > requests_before:
        raise asyncio.CancelledError


class RedisConnection:
    """The process's Redis client, and the two log lines of an outage: when it starts and when it ends."""

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX, timeout_s: float = COMMAND_TIMEOUT_S) -> None:
        self.url = url
        self.prefix = prefix
        self.client: Redis = Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
            # One retry replaces a pooled connection that a Redis restart left dead; more would only stall turns.
            retry=Retry(NoBackoff(), 1),
            health_check_interval=10,
        )
        self.available = True

    async def run(self, what: str, operation: Callable[[Redis], Awaitable[T]]) -> T:
        """``operation`` on the client; ``StoreUnavailable`` (logged once per outage) when Redis does not answer."""
        cancel_requests = cancel_request_count()
        try:
            result = await operation(self.client)
        except (RedisError, OSError) as exc:
            raise_if_cancel_was_swallowed(cancel_requests)
            self.failed(what, exc)
            raise StoreUnavailable(f"{what}: Redis unreachable") from exc
        raise_if_cancel_was_swallowed(cancel_requests)
        self.succeeded()
        return result

    def failed(self, what: str, exc: BaseException) -> None:
        metrics.STORE_ERRORS.inc()
        if self.available:
            self.available = False
            logger.warning(
                "conversation store %s unreachable (%s while trying to %s): conversations go on, "
                "but new resumption handles wait until it is back",
                redacted(self.url),
                type(exc).__name__,
                what,
            )

    def succeeded(self) -> None:
        if not self.available:
            self.available = True
            logger.warning("conversation store %s reachable again: resumption handles resume", redacted(self.url))

    async def ping(self) -> bool:
        with contextlib.suppress(StoreUnavailable):
            return bool(await self.run("ping", lambda client: client.ping()))
        return False

    async def aclose(self) -> None:
        await self.client.aclose()
