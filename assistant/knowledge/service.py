"""The process's knowledge: one store shared by every part that needs it, and what it knows about collections.

The embedded Qdrant store admits one client per folder (one process, and one
``QdrantClient`` in it), so memory (``remember``/``recall``),
``search_knowledge`` and the preparation of personas' corpora must share one
``KnowledgeStore``. ``KnowledgeService`` opens it on first use (a server opens
it at startup with ``open_async``, to fail early), hands the same one to all,
and closes it once.

It also keeps what sessions need to know about collections beyond their
passages:

- **settings**: how many passages a search returns, and which metadata field
  of a passage holds an original text that can be read aloud, in which
  espeak-ng voice (a couplet's Tamil); set by whoever owns the collection (a
  persona);
- **readiness**: a packaged corpus is indexed in the background the first
  time it is needed (the Thirukkural's 1,330 couplets take a minute or two on
  two cores); until then a search says so plainly instead of finding nothing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from assistant.embeddings import Embedder, load_embedder
from assistant.knowledge.corpora import find_corpus
from assistant.knowledge.store import AddResult, KnowledgeError, KnowledgeStore

logger = logging.getLogger("assistant.knowledge")

DEFAULT_PASSAGES = 3


@dataclass(frozen=True, slots=True)
class ReadAloud:
    """Where a passage keeps an original text (``metadata[field]``) and the espeak-ng voice that reads it."""

    voice: str
    field: str


@dataclass(frozen=True, slots=True)
class CollectionSettings:
    """How searches of one collection answer."""

    passages: int = DEFAULT_PASSAGES
    read_aloud: ReadAloud | None = None


class KnowledgeService:
    """One ``KnowledgeStore`` per process, opened once, plus collection settings and readiness."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        url: str | None = None,
        api_key: str | None = None,
        embedder_loader: Callable[[], Embedder] = load_embedder,
    ) -> None:
        """The embedded store at ``path`` (default: the data dir's), or the Qdrant server at ``url``; not opened yet."""
        self.path = path
        self.url = url
        self._api_key = api_key
        self._embedder_loader = embedder_loader
        self._store: KnowledgeStore | None = None
        self._lock = threading.Lock()
        self._settings: dict[str, CollectionSettings] = {}
        self._preparing: dict[str, asyncio.Task[AddResult]] = {}

    @property
    def where(self) -> str:
        """The store's location, for messages."""
        return self.url or str(self.path or "the data directory")

    def store(self) -> KnowledgeStore:
        """The store, opened on first call (blocking: call from a thread, or use ``open_async``).

        ``KnowledgeError`` when it cannot be opened: another process holds the
        embedded folder (``StoreBusy``), the server is unreachable, or the
        ``knowledge`` extra (qdrant-client) is not installed.
        """
        with self._lock:
            if self._store is None:
                try:
                    import qdrant_client  # noqa: F401 - checked here for a message that says what to install
                except ModuleNotFoundError:
                    raise KnowledgeError(
                        "the knowledge store needs qdrant-client: pip install 'live-assistant[knowledge]'"
                    ) from None
                self._store = KnowledgeStore.open(
                    self.path, url=self.url, api_key=self._api_key, embedder_loader=self._embedder_loader
                )
            return self._store

    async def open_async(self) -> KnowledgeStore:
        """``store()`` off the event loop (opening reads the whole embedded database)."""
        return await asyncio.to_thread(self.store)

    async def aclose(self) -> None:
        """Stop corpus indexing still under way, then close the store."""
        for task in self._preparing.values():
            task.cancel()
        await asyncio.gather(*self._preparing.values(), return_exceptions=True)
        self._preparing.clear()
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    # -- collections ------------------------------------------------------------------------------

    def configure(self, collection: str, settings: CollectionSettings) -> None:
        """How searches of ``collection`` answer (a persona's passage count and read-aloud field)."""
        self._settings[collection] = settings

    def settings(self, collection: str) -> CollectionSettings:
        return self._settings.get(collection, CollectionSettings())

    def prepare(self, collection: str, corpus: str) -> asyncio.Task[AddResult]:
        """Index the packaged ``corpus`` into ``collection`` in the background, once per process.

        An index that is already up to date is recognised in milliseconds
        (status ``unchanged``); a first index embeds the whole corpus. Call
        from the event loop; the task is shared by every caller.
        """
        task = self._preparing.get(collection)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = asyncio.get_running_loop().create_task(
                self._index_corpus(collection, corpus), name=f"index-{corpus}-into-{collection}"
            )
            task.add_done_callback(_log_failure)
            self._preparing[collection] = task
        return task

    async def _index_corpus(self, collection: str, corpus_name: str) -> AddResult:
        started = time.perf_counter()
        store = await self.open_async()
        corpus = await asyncio.to_thread(find_corpus, corpus_name)
        existing = await asyncio.to_thread(store.document, f"corpus:{corpus.name}", collection)
        if existing is None:
            logger.info("indexing the %s into the %s collection (first use; a minute or two)", corpus.title, collection)
        result = await store.add_corpus_async(corpus, collection)
        logger.info(
            "%s in %s: %s, %d passages (%.1f s)",
            corpus.title,
            collection,
            result.status,
            result.passages,
            time.perf_counter() - started,
        )
        return result

    async def wait_ready(self, collection: str, timeout_s: float) -> None:
        """Return once ``collection`` can be searched; ``KnowledgeError`` saying why not after ``timeout_s``.

        A collection nobody prepares is ready at once (it is searched as it is).
        """
        task = self._preparing.get(collection)
        if task is None:
            return
        done, _ = await asyncio.wait([task], timeout=timeout_s)
        if not done:
            raise KnowledgeError(
                f"the {collection} collection is still being indexed (only the first time it is used, "
                "a minute or two); ask again in a moment"
            )
        if task.cancelled():
            raise KnowledgeError(f"indexing the {collection} collection was stopped")
        error = task.exception()
        if error is not None:
            raise KnowledgeError(f"the {collection} collection could not be indexed: {error}") from error


def _log_failure(task: asyncio.Task[AddResult]) -> None:
    """Say why indexing failed when it happens (searches repeat it to the model)."""
    if not task.cancelled() and task.exception() is not None:
        logger.error("%s failed: %s", task.get_name(), task.exception())
