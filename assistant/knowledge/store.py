"""The knowledge store: documents as embedded passages in Qdrant.

Qdrant runs embedded (``QdrantClient(path=...)``, the default: a folder under
the user's data directory, nothing to install or start) or as a server
(``url=...``) when one machine is not enough; the code is the same. Each
knowledge collection is a Qdrant collection (``assistant_<name>``) with one
dense vector per passage and the passage's text, source and location in its
payload. Everything the store knows lives in Qdrant itself, so a store on a
server is complete from any machine that reaches it.

Documents are keyed by where they came from (a file's absolute path, or
``corpus:<name>`` for a packaged corpus such as the Thirukkural). Adding the
same content again is a no-op (SHA-256 of the content), a changed file
replaces its passages (new ones are written before stale ones are deleted,
so a crash leaves old or new text, never none), and the collection records
which embedding model built it so a model change is caught, not silently
searched with incomparable vectors.

The store is synchronous and thread-safe; the ``*_async`` methods run the
same work on a worker thread so an event loop never blocks on embedding or
disk. The embedded database allows one process at a time on a folder: while
``assistant serve`` holds it, other processes get ``StoreBusy`` (use a Qdrant
server for shared access).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

import numpy as np

from assistant.embeddings import Embedder, EmbeddingModelMissing, load_embedder
from assistant.knowledge.chunking import ChunkingOptions, chunk_blocks
from assistant.knowledge.corpora import Corpus, find_corpus
from assistant.knowledge.documents import HEADING_SEPARATOR, DocumentError, load_document
from assistant.knowledge.errors import EmbeddingUnavailable, KnowledgeError, StoreBusy
from assistant.knowledge.passages import Passage
from assistant.paths import data_dir

DEFAULT_COLLECTION = "default"
COLLECTION_PREFIX = "assistant_"
DENSE_VECTOR = "dense"
# Bump when the payload layout changes in a way older collections cannot serve.
SCHEMA_VERSION = 1
EMBED_BATCH = 32
UPSERT_BATCH = 256
_COLLECTION_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # whole-string (fullmatch): "$" would let "\n" through
_POINT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/live-assistant/knowledge")
_DOCUMENT_FIELDS = ["document", "name", "title", "kind", "sha256", "chunks", "added_at"]

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SourceDocument:
    """A document ready to index: its key, a display name, a content hash and its passages."""

    key: str
    name: str
    kind: str
    title: str
    sha256: str
    passages: list[Passage]

    def citation(self, passage: Passage) -> str:
        return f"{self.name}, {passage.location}" if passage.location else self.name


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_source_file(path: Path, chunking: ChunkingOptions | None = None) -> SourceDocument:
    """Parse and chunk a file; ``DocumentError`` says why one cannot be read."""
    resolved = path.expanduser().resolve()
    document = load_document(resolved)
    passages = []
    for chunk in chunk_blocks(document.blocks, chunking):
        context = HEADING_SEPARATOR.join(chunk.headings) if chunk.headings else document.title
        passages.append(Passage(chunk.text, chunk.location, f"{context}: {chunk.text}" if context else chunk.text))
    if not passages:
        raise DocumentError(f"{resolved.name}: no text found")
    return SourceDocument(
        key=str(resolved),
        name=resolved.name,
        kind=document.kind,
        title=document.title,
        sha256=content_hash(resolved.read_bytes()),
        passages=passages,
    )


AddStatus = Literal["added", "replaced", "unchanged", "duplicate", "reindexed", "kept"]


@dataclass(frozen=True, slots=True)
class AddResult:
    """What happened to one document.

    ``unchanged``: already indexed with this content. ``duplicate``: the same
    content is indexed under another key (``same_as``). ``kept``: on reindex
    the source was gone, so the stored passages were re-embedded as they were.
    """

    collection: str
    document: str
    status: AddStatus
    passages: int
    same_as: str | None = None


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    collection: str
    document: str
    name: str
    title: str
    kind: str
    sha256: str
    passages: int
    added_at: str


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    name: str
    documents: int
    passages: int
    embedding_model: str


@dataclass(frozen=True, slots=True)
class Hit:
    """A passage found by a search, with its citation and cosine similarity to the query."""

    text: str
    source: str
    score: float
    location: str
    document: str
    collection: str
    metadata: Mapping[str, Any]
    added_at: str = ""

    def as_tool_output(self) -> dict[str, Any]:
        """The ``search_knowledge`` contract's passage shape (text, source, score) plus where and what."""
        output: dict[str, Any] = {
            "text": self.text,
            "source": self.source,
            "score": round(self.score, 3),
            "location": self.location,
            "document": self.document,
        }
        if self.metadata:
            output["metadata"] = dict(self.metadata)
        return output


def validate_collection_name(name: str) -> str:
    if not _COLLECTION_NAME.fullmatch(name):
        raise KnowledgeError(
            f"invalid collection name {name!r}: use 1-64 lower-case letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return name


def default_store_path() -> Path:
    """Where the embedded store lives: ``<data dir>/knowledge``."""
    return data_dir() / "knowledge"


def _point_id(document: str, index: int) -> str:
    return str(uuid.uuid5(_POINT_NAMESPACE, f"{document}\x00{index}"))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class KnowledgeStore:
    """Collections of embedded passages in Qdrant; see the module docstring for the rules."""

    def __init__(
        self,
        client: Any,
        embedder: Embedder | None = None,
        *,
        local: bool,
        chunking: ChunkingOptions | None = None,
        corpus_resolver: Callable[[str], Corpus] | None = None,
        embedder_loader: Callable[[], Embedder] = load_embedder,
    ) -> None:
        """Wrap an open ``QdrantClient``; most callers want ``KnowledgeStore.open``.

        ``corpus_resolver`` maps a corpus name to a ``Corpus`` for reindexing
        packaged corpora (``assistant.knowledge.corpora.find_corpus`` by default).
        ``embedder_loader`` provides the embedding model when ``embedder`` is
        not given, on first use.
        """
        self._client = client
        self._embedder = embedder
        self._embedder_loader = embedder_loader
        self._embedding_problem: str | None = None
        self._local = local
        self._chunking = chunking
        self._corpus_resolver = corpus_resolver
        # The embedded database is plain Python state; a server client is thread-safe by itself.
        self._lock: contextlib.AbstractContextManager[Any] = threading.RLock() if local else contextlib.nullcontext()

    @classmethod
    def open(
        cls,
        path: Path | None = None,
        *,
        url: str | None = None,
        api_key: str | None = None,
        embedder: Embedder | None = None,
        chunking: ChunkingOptions | None = None,
        embedder_loader: Callable[[], Embedder] = load_embedder,
    ) -> KnowledgeStore:
        """The embedded store at ``path`` (default ``default_store_path()``), or a Qdrant server at ``url``.

        The embedding model loads on first use, so listing and removing stay instant.
        """
        from qdrant_client import QdrantClient

        if url:
            from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

            # The client's own version check runs on a background thread and only warns; reachability is
            # checked here instead, synchronously, so a wrong URL fails at startup with a clear message.
            client = QdrantClient(url=url, api_key=api_key, check_compatibility=False)
            try:
                client.get_collections()
            except (ResponseHandlingException, UnexpectedResponse) as exc:
                client.close()
                raise KnowledgeError(f"cannot use the Qdrant server at {url}: {exc}") from exc
            return cls(client, embedder, local=False, chunking=chunking, embedder_loader=embedder_loader)
        location = path or default_store_path()
        try:
            client = QdrantClient(path=str(location))
        except RuntimeError as exc:
            if "already accessed" not in str(exc):
                raise
            raise StoreBusy(
                f"the knowledge store at {location} is in use by another process (a running `assistant serve`?); "
                "stop it, or run a Qdrant server and pass --qdrant-url to both"
            ) from exc
        return cls(client, embedder, local=True, chunking=chunking, embedder_loader=embedder_loader)

    def close(self) -> None:
        with self._lock:
            self._client.close()

    def __enter__(self) -> KnowledgeStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def embedder(self) -> Embedder:
        """The embedding model, loaded on first use; ``EmbeddingUnavailable`` says which package provides it."""
        if self._embedder is None:
            if self._embedding_problem is not None:
                raise EmbeddingUnavailable(self._embedding_problem)
            try:
                self._embedder = self._embedder_loader()
            except EmbeddingModelMissing as exc:
                self._embedding_problem = str(exc)
                raise EmbeddingUnavailable(self._embedding_problem) from exc
        return self._embedder

    @property
    def embedding_problem(self) -> str | None:
        """Why passages cannot be embedded here (the model is missing), or None when they can."""
        try:
            _ = self.embedder
        except EmbeddingUnavailable as exc:
            return str(exc)
        return None

    # -- collections ------------------------------------------------------------------------------

    @staticmethod
    def _qdrant_name(collection: str) -> str:
        return COLLECTION_PREFIX + validate_collection_name(collection)

    def _collection_metadata(self, collection: str) -> dict[str, Any] | None:
        name = self._qdrant_name(collection)
        if not self._client.collection_exists(name):
            return None
        info = self._client.get_collection(name)
        return dict(info.config.metadata or {})

    def _create_collection(self, collection: str, *, with_vectors: bool = True) -> None:
        """A new collection; without vectors (no model to size them) it only keeps text until a reindex."""
        from qdrant_client import models

        name = self._qdrant_name(collection)
        if with_vectors:
            vectors = {DENSE_VECTOR: models.VectorParams(size=self.embedder.dim, distance=models.Distance.COSINE)}
            metadata = {"embedding_model": self.embedder.name, "dimension": self.embedder.dim, "schema": SCHEMA_VERSION}
        else:
            vectors, metadata = {}, {"embedding_model": None, "dimension": None, "schema": SCHEMA_VERSION}
        self._client.create_collection(name, vectors_config=vectors, metadata=metadata)
        if not self._local:  # the embedded database has no payload indexes; a server uses them for filters
            for field_name, schema in (
                ("document", models.PayloadSchemaType.KEYWORD),
                ("sha256", models.PayloadSchemaType.KEYWORD),
                ("chunk", models.PayloadSchemaType.INTEGER),
            ):
                self._client.create_payload_index(name, field_name, field_schema=schema)

    def _mismatch(self, metadata: Mapping[str, Any]) -> str | None:
        """Why vectors in a collection cannot be compared with this store's, or None."""
        if metadata.get("schema") != SCHEMA_VERSION:
            return f"its layout is version {metadata.get('schema')}, this program writes {SCHEMA_VERSION}"
        if metadata.get("embedding_model") is None:
            return "its passages were stored without an embedding model"
        if metadata.get("embedding_model") != self.embedder.name:
            return f"it was embedded with {metadata.get('embedding_model')}, this program uses {self.embedder.name}"
        return None

    def _writable_collection(self, collection: str, *, keep_without_model: bool = False) -> bool:
        """Make sure ``collection`` can take passages; whether they are to be embedded.

        With ``keep_without_model`` a missing model is no obstacle: passages are
        stored without vectors (see ``needs_embedding``).
        """
        if keep_without_model and self.embedding_problem is not None:
            if self._collection_metadata(collection) is None:
                self._create_collection(collection, with_vectors=False)
            return False
        metadata = self._collection_metadata(collection)
        if metadata is None:
            self._create_collection(collection)
            return True
        reason = self._mismatch(metadata)
        if reason:
            raise KnowledgeError(
                f"collection {collection!r} cannot take new passages: {reason}; "
                f"run `assistant knowledge reindex --collection {collection}`"
            )
        return True

    def needs_embedding(self, collection: str) -> bool:
        """Whether ``collection`` holds passages kept without vectors (or stale ones) that the model,
        now available, should embed: ``reindex`` it then."""
        if self.embedding_problem is not None:
            return False
        with self._lock:
            metadata = self._collection_metadata(collection)
            if metadata is None:
                return False
            if self._mismatch(metadata):
                return True
            return next(self._scroll(collection, {"embedded": False}, False), None) is not None

    def collection_names(self) -> list[str]:
        with self._lock:
            names = [c.name for c in self._client.get_collections().collections]
        return sorted(n.removeprefix(COLLECTION_PREFIX) for n in names if n.startswith(COLLECTION_PREFIX))

    def collections(self) -> list[CollectionInfo]:
        """Every collection with its document and passage counts."""
        result = []
        for name in self.collection_names():
            with self._lock:
                metadata = self._collection_metadata(name) or {}
                passages = self._client.count(self._qdrant_name(name), exact=True).count
            result.append(
                CollectionInfo(name, len(self.documents(name)), passages, str(metadata.get("embedding_model", "?")))
            )
        return result

    def remove_collection(self, collection: str) -> bool:
        """Delete a collection and all its passages; False if there was none."""
        with self._lock:
            name = self._qdrant_name(collection)
            if not self._client.collection_exists(name):
                return False
            self._client.delete_collection(name)
            return True

    # -- documents --------------------------------------------------------------------------------

    def _scroll(self, collection: str, conditions: Mapping[str, Any], payload: list[str] | bool) -> Iterator[Any]:
        from qdrant_client import models

        query_filter = models.Filter(
            must=[models.FieldCondition(key=k, match=models.MatchValue(value=v)) for k, v in conditions.items()]
        )
        offset = None
        while True:
            points, offset = self._client.scroll(
                self._qdrant_name(collection),
                scroll_filter=query_filter,
                limit=256,
                offset=offset,
                with_payload=payload,
                with_vectors=False,
            )
            yield from points
            if offset is None:
                return

    def documents(self, collection: str | None = None) -> list[DocumentInfo]:
        """Documents in one collection, or in all of them, sorted by collection and name."""
        names = [collection] if collection else self.collection_names()
        found: list[DocumentInfo] = []
        for name in names:
            with self._lock:
                if not self._client.collection_exists(self._qdrant_name(name)):
                    raise KnowledgeError(f"no knowledge collection named {name!r}")
                heads = list(self._scroll(name, {"chunk": 0}, _DOCUMENT_FIELDS))
            found.extend(_document_info(name, point.payload or {}) for point in heads)
        return sorted(found, key=lambda d: (d.collection, d.name, d.document))

    def document(self, key: str, collection: str = DEFAULT_COLLECTION) -> DocumentInfo | None:
        """The document stored under ``key`` in ``collection``, or None."""
        with self._lock:
            if self._collection_metadata(collection) is None:
                return None
            head = self._head(collection, {"document": key})
        return _document_info(collection, head) if head is not None else None

    def _head(self, collection: str, conditions: Mapping[str, Any]) -> dict[str, Any] | None:
        for point in self._scroll(collection, {**conditions, "chunk": 0}, _DOCUMENT_FIELDS):
            return dict(point.payload or {})
        return None

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed in length-sorted batches: the encoder pads each batch to its longest text."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = np.zeros((len(texts), self.embedder.dim), dtype=np.float32)
        for start in range(0, len(order), EMBED_BATCH):
            batch = order[start : start + EMBED_BATCH]
            vectors[batch] = self.embedder.embed([texts[i] for i in batch])
        return vectors

    def _write(self, collection: str, source: SourceDocument, *, embed: bool = True) -> None:
        """Upsert a document's passages (without vectors unless ``embed``), then delete what it had beyond them."""
        from qdrant_client import models

        # Outside the lock: embedding is the slow part.
        vectors = self._embed([p.embedding_input() for p in source.passages]) if embed else None
        added_at = _now()
        points = [
            models.PointStruct(
                id=_point_id(source.key, index),
                vector={DENSE_VECTOR: vectors[index].tolist()} if vectors is not None else {},
                payload={
                    "document": source.key,
                    "name": source.name,
                    "title": source.title,
                    "kind": source.kind,
                    "sha256": source.sha256,
                    "chunk": index,
                    "chunks": len(source.passages),
                    "added_at": added_at,
                    "text": passage.text,
                    "location": passage.location,
                    "citation": source.citation(passage),
                    "embed_text": passage.embed_text,
                    "metadata": dict(passage.metadata),
                    "embedded": embed,
                },
            )
            for index, passage in enumerate(source.passages)
        ]
        name = self._qdrant_name(collection)
        # The first passage carries the document's hash and is what listing and de-duplication read, so it
        # goes last: an interrupted write leaves the old version's record (or none), and the next add redoes it.
        ordered = [*points[1:], points[0]]
        with self._lock:
            for start in range(0, len(ordered), UPSERT_BATCH):
                self._client.upsert(name, ordered[start : start + UPSERT_BATCH])
            stale = models.Filter(
                must=[
                    models.FieldCondition(key="document", match=models.MatchValue(value=source.key)),
                    models.FieldCondition(key="chunk", range=models.Range(gte=len(points))),
                ]
            )
            self._client.delete(name, points_selector=models.FilterSelector(filter=stale))

    def add_document(
        self, source: SourceDocument, collection: str = DEFAULT_COLLECTION, *, keep_without_model: bool = False
    ) -> AddResult:
        """Index a prepared document unless this content is already there.

        ``keep_without_model``: when the embedding model is missing, store the
        text anyway, without vectors, rather than fail (see ``needs_embedding``).
        """
        with self._lock:
            embed = self._writable_collection(collection, keep_without_model=keep_without_model)
            previous = self._head(collection, {"document": source.key})
            if previous is not None and previous["sha256"] == source.sha256:
                return AddResult(collection, source.key, "unchanged", int(previous["chunks"]))
            twin = self._head(collection, {"sha256": source.sha256})
            if twin is not None and twin["document"] != source.key:
                return AddResult(collection, source.key, "duplicate", int(twin["chunks"]), same_as=twin["document"])
        self._write(collection, source, embed=embed)
        return AddResult(collection, source.key, "replaced" if previous else "added", len(source.passages))

    def add_file(self, path: Path, collection: str = DEFAULT_COLLECTION) -> AddResult:
        """Index a text, Markdown, PDF or HTML file; see ``add_document`` for what happens to repeats."""
        validate_collection_name(collection)
        return self.add_document(read_source_file(path, self._chunking), collection)

    def add_text(
        self,
        text: str,
        key: str,
        *,
        collection: str = DEFAULT_COLLECTION,
        name: str | None = None,
        keep_without_model: bool = False,
    ) -> AddResult:
        """Index a piece of text under ``key`` (a note, a remembered fact); a new text for a key replaces it."""
        if not text.strip():
            raise KnowledgeError("nothing to add: the text is empty")
        document = SourceDocument(
            key=key,
            name=name or key,
            kind="text",
            title=name or key,
            sha256=content_hash(text.encode("utf-8")),
            passages=[Passage(text.strip())],
        )
        return self.add_document(document, collection, keep_without_model=keep_without_model)

    def add_corpus(self, corpus: Corpus, collection: str) -> AddResult:
        """Index a packaged corpus (keyed ``corpus:<name>``) unless this version of it is already there."""
        validate_collection_name(collection)
        return self.add_document(corpus_document(corpus), collection)

    def remove(self, document: str, collection: str | None = None) -> list[DocumentInfo]:
        """Remove a document by key, file path or file name; returns what was removed.

        A bare name that matches documents in several places removes nothing
        and says which keys to choose from, rather than guessing.
        """
        from qdrant_client import models

        candidates = self.documents(collection)
        as_path = str(Path(document).expanduser().resolve()) if not document.startswith("corpus:") else document
        matches = [d for d in candidates if d.document in (document, as_path)]
        if not matches:
            matches = [d for d in candidates if d.name == document]
            if len(matches) > 1:
                choices = ", ".join(f"{d.document} ({d.collection})" for d in matches)
                raise KnowledgeError(f"{document!r} names several documents: {choices}; give the full path")
        for info in matches:
            selector = models.FilterSelector(
                filter=models.Filter(
                    must=[models.FieldCondition(key="document", match=models.MatchValue(value=info.document))]
                )
            )
            with self._lock:
                self._client.delete(self._qdrant_name(info.collection), points_selector=selector)
        return matches

    def _stored_document(self, collection: str, info: DocumentInfo) -> SourceDocument:
        with self._lock:
            points = list(self._scroll(collection, {"document": info.document}, True))
        payloads = sorted((p.payload or {} for p in points), key=lambda p: int(p["chunk"]))
        return SourceDocument(
            key=info.document,
            name=info.name,
            kind=info.kind,
            title=info.title,
            sha256=info.sha256,
            passages=[
                Passage(p["text"], p.get("location", ""), p.get("embed_text", ""), p.get("metadata") or {})
                for p in payloads
            ],
        )

    def _fresh_source(self, info: DocumentInfo) -> SourceDocument | None:
        """The document as its source has it now, or None when the source is gone."""
        if info.document.startswith("corpus:"):
            resolve = self._corpus_resolver or find_corpus
            try:
                corpus = resolve(info.document.removeprefix("corpus:"))
            except KnowledgeError:
                return None
            return corpus_document(corpus)
        if info.kind == "text" or not Path(info.document).is_file():
            return None
        try:
            return read_source_file(Path(info.document), self._chunking)
        except DocumentError:
            return None

    def reindex(self, collection: str | None = None) -> list[AddResult]:
        """Re-read every document from its source and embed it again.

        For files changed on disk, a new chunking or a new embedding model (the
        collection is rebuilt then). A document whose source is gone keeps its
        stored passages, embedded again (status ``kept``): reindexing never loses text.
        """
        problem = self.embedding_problem  # before any collection is dropped to be rebuilt
        if problem is not None:
            raise EmbeddingUnavailable(problem)
        results = []
        for name in [validate_collection_name(collection)] if collection else self.collection_names():
            infos = self.documents(name)
            sources = []
            for info in infos:
                fresh = self._fresh_source(info)
                sources.append((fresh or self._stored_document(name, info), fresh is None))
            with self._lock:
                metadata = self._collection_metadata(name)
                if metadata is None or self._mismatch(metadata):
                    self.remove_collection(name)
                    self._create_collection(name)
            for source, kept in sources:
                self._write(name, source)
                results.append(AddResult(name, source.key, "kept" if kept else "reindexed", len(source.passages)))
        return results

    # -- search -----------------------------------------------------------------------------------

    def search(
        self, query: str, collection: str = DEFAULT_COLLECTION, *, limit: int = 5, min_score: float | None = None
    ) -> list[Hit]:
        """The passages most similar in meaning to ``query``, best first."""
        if not query.strip():
            raise KnowledgeError("the search query is empty")
        if limit < 1:
            raise KnowledgeError("limit must be at least 1")
        with self._lock:
            metadata = self._collection_metadata(collection)
        if metadata is None:
            available = ", ".join(self.collection_names()) or "none yet"
            raise KnowledgeError(f"no knowledge collection named {collection!r} (collections: {available})")
        reason = self._mismatch(metadata)
        if reason:
            raise KnowledgeError(
                f"collection {collection!r} needs reindexing before it can be searched: {reason}; "
                f"run `assistant knowledge reindex --collection {collection}`"
            )
        vector = self.embedder.embed([query])[0]
        with self._lock:
            response = self._client.query_points(
                self._qdrant_name(collection),
                query=vector.tolist(),
                using=DENSE_VECTOR,
                limit=limit,
                with_payload=True,
                score_threshold=min_score,
            )
        hits = []
        for point in response.points:
            p = point.payload or {}
            hits.append(
                Hit(
                    text=p["text"],
                    source=p.get("citation") or p["name"],
                    score=float(point.score),
                    location=p.get("location", ""),
                    document=p["document"],
                    collection=collection,
                    metadata=p.get("metadata") or {},
                    added_at=p.get("added_at", ""),
                )
            )
        return hits

    # -- async ------------------------------------------------------------------------------------

    async def _in_thread(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, functools.partial(function, *args, **kwargs))

    async def search_async(
        self, query: str, collection: str = DEFAULT_COLLECTION, *, limit: int = 5, min_score: float | None = None
    ) -> list[Hit]:
        """``search`` on a worker thread."""
        return await self._in_thread(self.search, query, collection, limit=limit, min_score=min_score)

    async def add_file_async(self, path: Path, collection: str = DEFAULT_COLLECTION) -> AddResult:
        """``add_file`` on a worker thread."""
        return await self._in_thread(self.add_file, path, collection)

    async def add_text_async(
        self, text: str, key: str, *, collection: str = DEFAULT_COLLECTION, name: str | None = None
    ) -> AddResult:
        """``add_text`` on a worker thread."""
        return await self._in_thread(self.add_text, text, key, collection=collection, name=name)

    async def add_corpus_async(self, corpus: Corpus, collection: str) -> AddResult:
        """``add_corpus`` on a worker thread."""
        return await self._in_thread(self.add_corpus, corpus, collection)


def _document_info(collection: str, head: Mapping[str, Any]) -> DocumentInfo:
    """A document as its first passage's payload describes it."""
    return DocumentInfo(
        collection=collection,
        document=head["document"],
        name=head["name"],
        title=head.get("title", ""),
        kind=head.get("kind", ""),
        sha256=head["sha256"],
        passages=int(head["chunks"]),
        added_at=head.get("added_at", ""),
    )


def corpus_document(corpus: Corpus) -> SourceDocument:
    """A packaged corpus as one document keyed ``corpus:<name>``, hashed by its fingerprint."""
    passages = list(corpus.passages())
    return SourceDocument(
        key=f"corpus:{corpus.name}",
        name=corpus.title,
        kind="corpus",
        title=corpus.title,
        sha256=corpus.fingerprint(),
        passages=passages,
    )


def iter_files(paths: Iterable[Path], suffixes: frozenset[str]) -> Iterator[Path]:
    """Files named directly, and files with a known suffix inside named directories (sorted, hidden ones skipped)."""
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in suffixes
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        else:
            yield path
