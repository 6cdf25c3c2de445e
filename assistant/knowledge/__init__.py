"""Knowledge: documents and packaged corpora as searchable passages in Qdrant.

The pieces a server or a command needs:

- ``KnowledgeStore.open(path=None, url=None)``: the store (embedded by default);
- ``KnowledgeService``: the one store a process shares (memory, search, personas), with
  collection settings and background indexing of packaged corpora;
- ``find_corpus(name)`` / ``ThirukkuralCorpus``: packaged corpora, indexed with ``store.add_corpus``.

The ``search_knowledge`` server tool over a service is a built-in tool
(``assistant.tools.builtin.search_knowledge``): tools use knowledge, never the reverse.
"""

from assistant.knowledge.corpora import Corpus, corpus_names, find_corpus
from assistant.knowledge.documents import DocumentError
from assistant.knowledge.service import CollectionSettings, KnowledgeService, ReadAloud
from assistant.knowledge.store import (
    DEFAULT_COLLECTION,
    AddResult,
    CollectionInfo,
    DocumentInfo,
    EmbeddingUnavailable,
    Hit,
    KnowledgeError,
    KnowledgeStore,
    Passage,
    StoreBusy,
    default_store_path,
)

__all__ = [
    "DEFAULT_COLLECTION",
    "AddResult",
    "CollectionInfo",
    "CollectionSettings",
    "Corpus",
    "DocumentError",
    "DocumentInfo",
    "EmbeddingUnavailable",
    "Hit",
    "KnowledgeError",
    "KnowledgeService",
    "KnowledgeStore",
    "Passage",
    "ReadAloud",
    "StoreBusy",
    "corpus_names",
    "default_store_path",
    "find_corpus",
]
