"""Session resumption: handles that let a new connection continue a conversation.

After each completed turn a session saves its configuration and history under
a fresh random handle and tells the client; a new connection that presents
the handle in ``setup.sessionResumption`` picks up where the old one stopped.
Handles expire (24 h by default). Stores hold JSON text, so an in-memory, a
SQLite or a Redis store (``redis_store``, shared by many server processes)
behave the same. A store that cannot be reached raises ``StoreUnavailable``:
the conversation goes on, only without a new handle until the store is back.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import AssistantError

DEFAULT_HANDLE_TTL_S = 24 * 3600.0
Clock = Callable[[], float]


def new_handle() -> str:
    """An unguessable handle; it is the only credential a resumption needs."""
    return secrets.token_urlsafe(24)


class StoreUnavailable(AssistantError):
    """The store cannot be reached now (a Redis server that went away); it may come back by itself."""


@dataclass(slots=True)
class SavedSession:
    """What a resumed connection needs: the client's setup and the history so far."""

    setup: dict[str, Any]
    history: list[dict[str, Any]]
    backend: str
    backend_state: dict[str, Any] | None = None
    turns: int = 0
    profile: str | None = None
    conversation: str | None = None  # stays the same across resumptions (late tool results follow it)
    pending_calls: dict[str, str] = field(default_factory=dict)  # client calls unanswered: id -> function name

    def to_json(self) -> str:
        return json.dumps(
            {
                "setup": self.setup,
                "history": self.history,
                "backend": self.backend,
                "backend_state": self.backend_state,
                "turns": self.turns,
                "profile": self.profile,
                "conversation": self.conversation,
                "pending_calls": self.pending_calls,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> SavedSession:
        data = json.loads(text)
        return cls(
            setup=data["setup"],
            history=data["history"],
            backend=data["backend"],
            backend_state=data.get("backend_state"),
            turns=data.get("turns", 0),
            profile=data.get("profile"),
            conversation=data.get("conversation"),
            pending_calls=data.get("pending_calls") or {},
        )


class ResumptionStore(ABC):
    """Where handles live between connections."""

    @abstractmethod
    async def save(self, handle: str, saved: SavedSession, ttl_s: float) -> None:
        """Keep ``saved`` under ``handle`` for ``ttl_s`` seconds; ``StoreUnavailable`` when it cannot."""

    @abstractmethod
    async def load(self, handle: str) -> SavedSession | None:
        """The session saved under ``handle``, or None when unknown or expired; ``StoreUnavailable`` when the
        store cannot be asked."""

    @abstractmethod
    async def delete(self, handle: str) -> None:
        """Forget ``handle`` (a newer one superseded it)."""

    async def reachable(self) -> bool:
        """Whether the store answers now (for a readiness check); a local store always does."""
        return True

    async def aclose(self) -> None:  # noqa: B027 - optional hook, empty by design
        """Release connections or files."""


class MemoryResumptionStore(ResumptionStore):
    """Handles in a dict: for tests and single-process servers that may lose them on restart."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._entries: dict[str, tuple[float, str]] = {}

    async def save(self, handle: str, saved: SavedSession, ttl_s: float) -> None:
        self._purge()
        self._entries[handle] = (self._clock() + ttl_s, saved.to_json())

    async def load(self, handle: str) -> SavedSession | None:
        entry = self._entries.get(handle)
        if entry is None or entry[0] <= self._clock():
            self._entries.pop(handle, None)
            return None
        return SavedSession.from_json(entry[1])

    async def delete(self, handle: str) -> None:
        self._entries.pop(handle, None)

    def _purge(self) -> None:
        now = self._clock()
        for handle in [h for h, (expires, _) in self._entries.items() if expires <= now]:
            del self._entries[handle]


class SqliteResumptionStore(ResumptionStore):
    """Handles in a SQLite file, so conversations survive a server restart.

    Every statement, and the close, runs on one worker thread of the store's
    own, in order: a save whose task was cancelled still finishes on that
    thread before the connection closes under it (closing a SQLite connection
    while another thread executes on it crashes the process).
    """

    def __init__(self, path: Path, clock: Clock = time.time) -> None:
        self.path = path
        self._clock = clock
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS resumption"
            " (handle TEXT PRIMARY KEY, expires_at REAL NOT NULL, payload TEXT NOT NULL)"
        )
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._closed = False

    async def _run(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, lambda: self._db.execute(sql, params).fetchall())

    async def save(self, handle: str, saved: SavedSession, ttl_s: float) -> None:
        now = self._clock()
        await self._run("DELETE FROM resumption WHERE expires_at <= ?", now)
        await self._run(
            "INSERT OR REPLACE INTO resumption (handle, expires_at, payload) VALUES (?, ?, ?)",
            handle,
            now + ttl_s,
            saved.to_json(),
        )

    async def load(self, handle: str) -> SavedSession | None:
        rows = await self._run(
            "SELECT payload FROM resumption WHERE handle = ? AND expires_at > ?", handle, self._clock()
        )
        return SavedSession.from_json(rows[0][0]) if rows else None

    async def delete(self, handle: str) -> None:
        await self._run("DELETE FROM resumption WHERE handle = ?", handle)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._thread, self._db.close)
        self._thread.shutdown(wait=False)
