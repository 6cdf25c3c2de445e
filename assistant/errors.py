"""``AssistantError``: the root of the project's own errors.

Every error this project raises on purpose derives from it (and, where it
did before, from the built-in it refines, such as ``ValueError``), so a caller
can tell "the assistant refused or could not" from a library's exception or a
bug with one ``except``. Two exceptions are signals rather than errors and
stay outside: ``ToolCancelled`` (a ``BaseException``, like
``asyncio.CancelledError``) and the local chat model's ``StopGeneration``;
so is ``QueueClosed``, which ends a read loop the way ``StopIteration`` does.
It lives below every layer: it imports nothing.
"""

from __future__ import annotations


class AssistantError(Exception):
    """An error of the assistant's own making: a refusal, a missing part, a bad input or a peer that went away."""
