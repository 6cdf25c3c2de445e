"""The knowledge errors, below the store and the corpora so both can raise them."""

from __future__ import annotations

from assistant.errors import AssistantError


class KnowledgeError(AssistantError):
    """A knowledge request that cannot be served; the message is meant for the user or the model."""


class StoreBusy(KnowledgeError):
    """Another process holds the embedded store's folder."""


class EmbeddingUnavailable(KnowledgeError):
    """The embedding model is not installed; the message names the package that provides it."""
