"""Knowledge: documents and packaged corpora as searchable passages in Qdrant.

The pieces a server or a command needs:

- ``KnowledgeStore.open(path=None, url=None)``: the store (embedded by default);
- ``make_search_knowledge(store, default_collection=...)``: the ``search_knowledge`` tool;
- ``find_corpus(name)`` / ``ThirukkuralCorpus``: packaged corpora, indexed with ``store.add_corpus``.
"""

from assistant.knowledge.corpora import Corpus, corpus_names, find_corpus
from assistant.knowledge.documents import DocumentError
from assistant.knowledge.search import make_search_knowledge
from assistant.knowledge.store import (
    DEFAULT_COLLECTION,
    AddResult,
    CollectionInfo,
    DocumentInfo,
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
    "Corpus",
    "DocumentError",
    "DocumentInfo",
    "Hit",
    "KnowledgeError",
    "KnowledgeStore",
    "Passage",
    "StoreBusy",
    "corpus_names",
    "default_store_path",
    "find_corpus",
    "make_search_knowledge",
]
