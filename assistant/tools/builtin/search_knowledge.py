"""``search_knowledge``: the server tool over the process's knowledge store.

Which collection a call searches: the one the model names, else the
session's (a persona's collection, ``ToolContext.profile``), else
``default``. How many passages come back and whether they carry an original
to read aloud are the collection's settings (``KnowledgeService.configure``).
A collection still being indexed, a store another process holds, a missing
model: each becomes a ``ToolError`` whose message the model can pass on.

Output, best passage first (the tool contract's ``text``, ``source`` and
``score``, then where the passage sits and, for structured corpora such as
the Thirukkural, its fields)::

    {"passages": [{"text", "source", "score", "location", "document", "metadata"?}],
     "read_aloud"?: {"voice": "ta", "field": "tamil"}}
"""

from __future__ import annotations

from typing import Any

from assistant.knowledge.service import KnowledgeService
from assistant.knowledge.store import DEFAULT_COLLECTION, KnowledgeError
from assistant.tools.base import BaseTool, CallContext, ToolError
from assistant.tools.decorator import FunctionTool

# How long a search waits for a collection being prepared before saying it is still indexing:
# long enough for the check of an index that is already there, short enough for a spoken turn.
READY_WAIT_S = 3.0


def search_knowledge_tool(knowledge: KnowledgeService) -> BaseTool:
    """The ``search_knowledge`` tool over ``knowledge`` (the store opens on the first search)."""

    async def search_knowledge(query: str, collection: str | None = None, *, context: CallContext) -> dict[str, Any]:
        """Search the user's knowledge (their documents, notes and installed collections such as the
        Thirukkural) for passages that answer a question, and quote them with their source.

        Args:
            query: the question or topic in plain words, e.g. "how should I deal with anger?".
            collection: which knowledge collection to search; leave it out for the session's own.
        """
        profile = context.session.profile
        name = collection or (profile.knowledge_collection if profile else None) or DEFAULT_COLLECTION
        settings = knowledge.settings(name)
        try:
            await knowledge.wait_ready(name, READY_WAIT_S)
            store = await knowledge.open_async()
            hits = await store.search_async(query, name, limit=settings.passages)
        except KnowledgeError as exc:
            raise ToolError(str(exc)) from exc
        output: dict[str, Any] = {"passages": [hit.as_tool_output() for hit in hits]}
        if settings.read_aloud is not None:
            output["read_aloud"] = {"voice": settings.read_aloud.voice, "field": settings.read_aloud.field}
        return output

    return FunctionTool(search_knowledge, read_only=True)
