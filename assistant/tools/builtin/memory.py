"""Long-term memory: ``remember`` and ``recall`` over a local vector index.

Facts live in SQLite in the user's data dir, each with its sentence
embedding (all-MiniLM-L6-v2 in NumPy, ``assistant.embeddings``). Recall
embeds the question and ranks every fact by cosine similarity: brute force
over a NumPy matrix kept in memory, which takes well under a millisecond for
the thousands of facts a person tells an assistant.

Without the embedding model, facts are still stored (their vectors are
filled in once the model is installed) and recall falls back to matching
words, and says so in its response.
"""

from __future__ import annotations

import re
import secrets
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from assistant.embeddings import Embedder, EmbeddingModelMissing, load_embedder
from assistant.tools.base import BaseTool, ToolError
from assistant.tools.decorator import FunctionTool

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


class MemoryStore:
    """Facts and their embeddings in one SQLite file, safe to share between sessions (threads)."""

    def __init__(self, path: Path, embedder: Callable[[], Embedder] = load_embedder) -> None:
        self.path = path
        self._load_embedder = embedder
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._embedder: Embedder | None = None
        self.missing_model: str | None = None  # why there is no embedder, once we know
        self._facts: list[Fact] = []
        self._matrix = np.zeros((0, 0), dtype=np.float32)

    # -- opening -------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        """Open the file and the model on first use, so listing tools touches neither."""
        if self._db is not None:
            return self._db
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False)
        db.execute(
            "CREATE TABLE IF NOT EXISTS facts ("
            "id TEXT PRIMARY KEY, text TEXT NOT NULL UNIQUE, stored_at TEXT NOT NULL, model TEXT, vector BLOB)"
        )
        db.commit()
        try:
            self._embedder = self._load_embedder()
        except EmbeddingModelMissing as exc:
            self.missing_model = str(exc)
        self._db = db
        self._index(db)
        return db

    def _index(self, db: sqlite3.Connection) -> None:
        """Load every fact; embed those stored without a vector (or with another model's)."""
        rows = db.execute("SELECT id, text, stored_at, model, vector FROM facts ORDER BY stored_at").fetchall()
        self._facts = [Fact(row[0], row[1], row[2]) for row in rows]
        if self._embedder is None:
            return
        stale = [i for i, row in enumerate(rows) if row[3] != self._embedder.name or row[4] is None]
        if stale:
            vectors = self._embedder.embed([rows[i][1] for i in stale])
            updates = [
                (self._embedder.name, vector.tobytes(), rows[i][0]) for i, vector in zip(stale, vectors, strict=True)
            ]
            with db:
                db.executemany("UPDATE facts SET model = ?, vector = ? WHERE id = ?", updates)
            rows = db.execute("SELECT id, text, stored_at, model, vector FROM facts ORDER BY stored_at").fetchall()
        dim = self._embedder.dim
        self._matrix = (
            np.stack([np.frombuffer(row[4], dtype=np.float32) for row in rows])
            if rows
            else np.zeros((0, dim), dtype=np.float32)
        )

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # -- the two operations --------------------------------------------------

    def remember(self, text: str) -> Fact:
        """Store ``text`` (once: the same fact twice keeps the first)."""
        text = " ".join(text.split())
        if not text:
            raise ToolError("there is no fact to remember")
        if len(text) > MAX_FACT_CHARS:
            raise ToolError(f"the fact is longer than {MAX_FACT_CHARS} characters; store a shorter summary")
        with self._lock:
            db = self._open()
            existing = db.execute("SELECT id, text, stored_at FROM facts WHERE text = ?", (text,)).fetchone()
            if existing is not None:
                return Fact(*existing)
            fact = Fact(secrets.token_hex(6), text, datetime.now(UTC).isoformat(timespec="seconds"))
            vector = self._embedder.embed([text])[0] if self._embedder is not None else None
            with db:
                db.execute(
                    "INSERT INTO facts (id, text, stored_at, model, vector) VALUES (?, ?, ?, ?, ?)",
                    (
                        fact.id,
                        fact.text,
                        fact.stored_at,
                        self._embedder.name if self._embedder is not None else None,
                        vector.tobytes() if vector is not None else None,
                    ),
                )
            self._facts.append(fact)
            if vector is not None:
                self._matrix = np.vstack([self._matrix, vector[None, :]])
            return fact

    def recall(self, query: str, limit: int = 3) -> list[tuple[Fact, float]]:
        """The facts most related to ``query``, best first, with their scores (nothing below relevance)."""
        limit = max(1, min(limit, MAX_RECALL))
        with self._lock:
            self._open()
            if not self._facts:
                return []
            if self._embedder is not None:
                scores = self._matrix @ self._embedder.embed([query])[0]
                threshold = RELEVANCE_THRESHOLD
            else:
                scores = np.array([self._word_score(query, fact.text) for fact in self._facts])
                threshold = 1e-9
            order = np.argsort(-scores, kind="stable")[:limit]
            return [(self._facts[i], round(float(scores[i]), 3)) for i in order if scores[i] >= threshold]

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
        return [FunctionTool(self.remember, cancellable=False), FunctionTool(self.recall)]
