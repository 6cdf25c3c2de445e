"""Packaged corpora: knowledge that comes from code rather than from a file.

A corpus is a named, versioned source of passages (the Thirukkural's 1,330
couplets, a product manual shipped in a wheel). The store indexes it as one
document keyed ``corpus:<name>``; its ``fingerprint`` changes whenever its
data or its passage format does, so an up-to-date index is left alone and a
stale one is replaced.

Corpora are found by name: the project's own, then any that installed
packages declare in the ``assistant.knowledge.corpora`` entry-point group
(``name = "package.module:factory"``, where calling ``factory()`` returns a
``Corpus``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Protocol, runtime_checkable

from assistant.knowledge.errors import KnowledgeError
from assistant.knowledge.passages import Passage

ENTRY_POINT_GROUP = "assistant.knowledge.corpora"
BUILTIN_CORPORA = {"thirukkural": "assistant.knowledge.thirukkural:ThirukkuralCorpus"}


@runtime_checkable
class Corpus(Protocol):
    """A source of passages with a stable name, a display title and a content fingerprint."""

    name: str
    title: str

    def fingerprint(self) -> str:
        """Changes whenever ``passages()`` would return something different."""
        ...

    def passages(self) -> Iterable[Passage]:
        """Every passage, in a stable order.

        A passage's text is quoted as it is, spoken included, so it names
        itself ("Kural 301, from the chapter Restraining Anger (31): ...").
        """
        ...


def _load(reference: str) -> Callable[[], object]:
    module_name, _, attribute = reference.partition(":")
    factory: Callable[[], object] = getattr(importlib.import_module(module_name), attribute)
    return factory


def corpus_names() -> list[str]:
    """Names of every corpus this installation can index."""
    return sorted(set(BUILTIN_CORPORA) | {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def find_corpus(name: str) -> Corpus:
    """The corpus called ``name``; ``KnowledgeError`` if none is installed or it cannot load."""
    if name in BUILTIN_CORPORA:
        factory = _load(BUILTIN_CORPORA[name])
    else:
        matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        if not matches:
            raise KnowledgeError(f"no corpus named {name!r}; installed corpora: {', '.join(corpus_names())}")
        factory = matches[0].load()
    corpus = factory()
    if not isinstance(corpus, Corpus):
        raise KnowledgeError(f"corpus {name!r} does not provide name, title, fingerprint() and passages()")
    return corpus
