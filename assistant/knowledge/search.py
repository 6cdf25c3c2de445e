"""The ``search_knowledge`` server tool, bound to a store and a default collection.

The tools room's registry turns a plain typed async function with a docstring
into a tool declaration; this module makes that function. It is made per
store and per default collection (a persona's, or ``default``) rather than
reading globals, so two personas served side by side search their own
collections. Failures raise ``KnowledgeError`` with a message the model can
read (the registry turns it into ``{"error": ...}``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from assistant.knowledge.store import DEFAULT_COLLECTION, KnowledgeStore

DEFAULT_PASSAGES = 3

SearchKnowledge = Callable[[str, str | None], Awaitable[dict[str, Any]]]


def make_search_knowledge(
    store: KnowledgeStore,
    *,
    default_collection: str = DEFAULT_COLLECTION,
    limit: int = DEFAULT_PASSAGES,
    min_score: float | None = None,
) -> SearchKnowledge:
    """A ``search_knowledge(query, collection=None)`` tool over ``store``.

    Output (the tool contract's ``output``): ``{"passages": [{"text", "source",
    "score", "location", "document", "metadata"?}, ...]}``, best first; the
    first three keys are the contract's, the rest say where a passage sits and,
    for structured corpora such as the Thirukkural, carry its fields.
    """

    async def search_knowledge(query: str, collection: str | None = None) -> dict[str, Any]:
        """Search the user's knowledge (their documents, notes and installed collections such as the
        Thirukkural) for passages that answer a question, and quote them with their source.

        Args:
            query: the question or topic in plain words, e.g. "how should I deal with anger?".
            collection: which knowledge collection to search; leave it out for the default one.
        """
        hits = await store.search_async(query, collection or default_collection, limit=limit, min_score=min_score)
        return {"passages": [hit.as_tool_output() for hit in hits]}

    return search_knowledge
