"""Long-term memory: ``remember`` and ``recall``, kept in the knowledge store's ``memory`` collection.

Facts live in the same store as the user's documents (``assistant knowledge
list --collection memory`` shows them, ``remove`` forgets one), each a
one-passage document keyed by a hash of its text, so a fact told twice is
kept once. Recall embeds the question (all-MiniLM-L6-v2 in NumPy) and asks
Qdrant for the nearest facts above a relevance threshold.

Without the embedding model, facts are still stored, without vectors (they
are embedded the first time memory is used with the model installed), and
recall falls back to matching words, and says so in its response.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field

from assistant.knowledge.service import KnowledgeService
from assistant.knowledge.store import KnowledgeError, KnowledgeStore
from assistant.tools.base import BaseTool, ToolError
from assistant.tools.decorator import FunctionTool

COLLECTION = "memory"
KEY_PREFIX = "memory:"
# Cosine similarity below which a fact is not about the question. all-MiniLM-L6-v2 scores
# paraphrases ("when was my sibling born" / "my sister's birthday is 3 May") around 0.4-0.6
# and unrelated pairs below 0.15.
RELEVANCE_THRESHOLD = 0.25
MAX_FACT_CHARS = 2000
MAX_RECALL = 20
STOPWORDS = frozenset(
    "a an the is are was were be been am i me my mine you your we our it its of to in on at for and or "
    "what when where who why how do does did has have had that this these those with about from".split()
)


@dataclass(frozen=True, slots=True)
class Fact:
    id: str
    text: str
    stored_at: str


def _words(text: str) -> set[str]:
    return {word for word in re.findall(r"[\w']+", text.lower()) if word not in STOPWORDS}


def _fact_id(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


class MemoryStore:
    """Facts in the ``memory`` collection of the process's knowledge store; safe to share between sessions."""

    def __init__(self, knowledge: KnowledgeService) -> None:
        self.knowledge = knowledge
        self._lock = threading.Lock()
        self._checked = False
        self.missing_model: str | None = None  # why there is no embedder, once we know

    def _store(self) -> KnowledgeStore:
        """The store, opened on first use; facts kept without vectors are embedded once the model is there."""
        try:
            store = self.knowledge.store()
            with self._lock:
                if not self._checked:
                    self.missing_model = store.embedding_problem
                    if store.needs_embedding(COLLECTION):
                        store.reindex(COLLECTION)
                    self._checked = True
        except KnowledgeError as exc:
            raise ToolError(f"memory is unavailable: {exc}") from exc
        return store

    def remember(self, text: str) -> Fact:
        """Store ``text`` (once: the same fact twice keeps the first)."""
        text = " ".join(text.split())
        if not text:
            raise ToolError("there is no fact to remember")
        if len(text) > MAX_FACT_CHARS:
            raise ToolError(f"the fact is longer than {MAX_FACT_CHARS} characters; store a shorter summary")
        store = self._store()
        fact_id = _fact_id(text)
        try:
            store.add_text(text, KEY_PREFIX + fact_id, collection=COLLECTION, name=text, keep_without_model=True)
            stored = store.document(KEY_PREFIX + fact_id, COLLECTION)
        except KnowledgeError as exc:
            raise ToolError(f"could not remember that: {exc}") from exc
        return Fact(fact_id, text, stored.added_at if stored else "")

    def recall(self, query: str, limit: int = 3) -> list[tuple[Fact, float]]:
        """The facts most related to ``query``, best first, with their scores (nothing below relevance)."""
        limit = max(1, min(limit, MAX_RECALL))
        store = self._store()
        try:
            if COLLECTION not in store.collection_names():
                return []
            if self.missing_model is not None:
                return self._recall_by_words(store, query, limit)
            hits = store.search(query, COLLECTION, limit=limit, min_score=RELEVANCE_THRESHOLD)
        except KnowledgeError as exc:
            raise ToolError(f"could not search memory: {exc}") from exc
        return [
            (Fact(hit.document.removeprefix(KEY_PREFIX), hit.text, hit.added_at), round(hit.score, 3)) for hit in hits
        ]

    def _recall_by_words(self, store: KnowledgeStore, query: str, limit: int) -> list[tuple[Fact, float]]:
        facts = [
            Fact(info.document.removeprefix(KEY_PREFIX), info.name, info.added_at)
            for info in sorted(store.documents(COLLECTION), key=lambda info: info.added_at)
        ]
        scored = [(fact, round(self._word_score(query, fact.text), 3)) for fact in facts]
        scored = [(fact, score) for fact, score in scored if score > 0]
        return sorted(scored, key=lambda pair: -pair[1])[:limit]

    @staticmethod
    def _word_score(query: str, text: str) -> float:
        """Without embeddings: 1 for a substring match, else the share of the query's words in the fact."""
        if query.strip().lower() in text.lower():
            return 1.0
        wanted = _words(query)
        return len(wanted & _words(text)) / len(wanted) if wanted else 0.0


class Memory:
    """The ``remember`` and ``recall`` tools over a ``MemoryStore``."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def remember(self, fact: str) -> dict[str, Any]:
        """Store a fact about the user for later conversations, in the user's words.

        Args:
            fact: One self-contained fact, e.g. "my sister's birthday is 3 May".
        """
        stored = self.store.remember(fact)
        return {"stored": stored.text, "id": stored.id}

    def recall(self, query: str, limit: Annotated[int, Field(ge=1, le=MAX_RECALL)] = 3) -> dict[str, Any]:
        """Look up facts the user asked you to remember, by meaning.

        Args:
            query: What you want to know, e.g. "when is my sister's birthday".
            limit: The most facts to return.
        """
        found = self.store.recall(query, limit)
        result: dict[str, Any] = {
            "facts": [{"text": fact.text, "score": score, "stored_at": fact.stored_at} for fact, score in found]
        }
        if self.store.missing_model is not None:
            result["match"] = "words"
            result["note"] = f"matched by shared words only: {self.store.missing_model}"
        else:
            result["match"] = "meaning"
        return result

    def tools(self) -> list[BaseTool]:
        # Remembering runs to the end even if the user barges in: half a write helps nobody.
        return [FunctionTool(self.remember, cancellable=False), FunctionTool(self.recall, read_only=True)]
