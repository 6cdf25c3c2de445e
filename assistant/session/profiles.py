"""Session profiles: server-side adjustments a session runs under (a persona).

A profile changes what the backend sees without the client's knowledge or
help: the setup (a persona's instruction and voice), which server tools are
offered, and where knowledge tools search by default. The server resolves
a profile by name for each connection (``?persona=NAME`` or the
``x-assistant-persona`` header, else its default); a resumed conversation
keeps the profile it started with. The name is the client's: a resolver
matches it against what the operator published and never opens it as a path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from assistant.errors import AssistantError
from assistant.protocol import Setup


def _unchanged(setup: Setup) -> Setup:
    return setup


def _every_tool(name: str) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class SessionProfile:
    """How the server adjusts one kind of session."""

    name: str
    apply: Callable[[Setup], Setup] = _unchanged
    offers_tool: Callable[[str], bool] = _every_tool
    knowledge_collection: str | None = None


class UnknownProfile(AssistantError, LookupError):
    """No profile of that name; the message lists what exists."""


# Name asked for (None: the server's default) -> profile (None: no adjustments). A coroutine, so that
# a resolver reads whatever it reads (a persona file) off the event loop.
ProfileResolver = Callable[[str | None], Awaitable[SessionProfile | None]]
