"""``BackendUnavailable``, below the backends registry so a backend can raise it without importing the registry."""

from __future__ import annotations

from assistant.errors import AssistantError


class BackendUnavailable(AssistantError):
    """The chosen backend cannot be imported; the message says how to install it."""
