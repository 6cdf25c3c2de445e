"""Late tool results follow their conversation from one connection to the next.

A non-blocking tool answers twice: at once ("the timer is set") and later
("the timer went off"), minutes after the call. By then the connection that
made the call may be gone: a phone that switched networks, a laptop lid
closed and opened, a browser tab that reconnects with its resumption handle.
The conversation goes on over the new connection, so the late result must
go there too, not to the closed one.

``LateResults`` is the post office between them. Each session registers as
the live receiver of its conversation (a conversation keeps its id across
resumptions) and unregisters when it ends. A late result goes to whichever
session receives for the conversation now; while none does, it is held
until one resumes the conversation, for as long as the conversation can
be resumed (the handle lifetime). A conversation that cannot be resumed
(no ``sessionResumption`` in its setup) lets its late results go, with a
log line, as nobody can come back for them.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from assistant.protocol import FunctionResponse

logger = logging.getLogger("assistant.session.late")

Receiver = Callable[[FunctionResponse], Awaitable[None]]
MAX_HELD_PER_CONVERSATION = 64


@dataclass(slots=True)
class _Mailbox:
    receiver: Receiver | None = None
    held: list[FunctionResponse] = field(default_factory=list)
    expires_at: float = float("inf")


class LateResultRouter(ABC):
    """Routes late tool results to the session that holds their conversation now."""

    @abstractmethod
    async def attach(self, conversation: str, receiver: Receiver) -> list[FunctionResponse]:
        """``receiver`` takes the conversation's late results from now on; those held meanwhile, oldest first."""

    @abstractmethod
    async def detach(self, conversation: str, receiver: Receiver, resumable_for_s: float | None) -> None:
        """``receiver`` ended; hold late results for ``resumable_for_s`` seconds, or drop them when None.

        A receiver that no longer holds the conversation (a newer session
        took it over) changes nothing.
        """

    @abstractmethod
    async def deliver(self, conversation: str, response: FunctionResponse) -> None:
        """Hand ``response`` to the conversation's session, or hold it until one resumes the conversation."""

    @abstractmethod
    async def held(self, conversation: str) -> int:
        """How many late results wait for the conversation to resume."""


class LateResults(LateResultRouter):
    """The mailboxes in this process's memory: one server, or tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._mailboxes: dict[str, _Mailbox] = {}

    async def attach(self, conversation: str, receiver: Receiver) -> list[FunctionResponse]:
        self._forget_expired()
        mailbox = self._mailboxes.setdefault(conversation, _Mailbox())
        mailbox.receiver, held, mailbox.held = receiver, mailbox.held, []
        mailbox.expires_at = float("inf")
        return held

    async def detach(self, conversation: str, receiver: Receiver, resumable_for_s: float | None) -> None:
        mailbox = self._mailboxes.get(conversation)
        if mailbox is None or mailbox.receiver is not receiver:
            return  # a newer session took the conversation over already
        if resumable_for_s is None:
            del self._mailboxes[conversation]
            return
        mailbox.receiver = None
        mailbox.expires_at = self._clock() + resumable_for_s

    async def deliver(self, conversation: str, response: FunctionResponse) -> None:
        self._forget_expired()
        mailbox = self._mailboxes.get(conversation)
        if mailbox is None:
            logger.info("conversation %s ended; the late result of %s has nobody to go to", conversation, response.name)
            return
        if mailbox.receiver is not None:
            await mailbox.receiver(response)
            return
        if len(mailbox.held) >= MAX_HELD_PER_CONVERSATION:
            dropped = mailbox.held.pop(0)
            logger.warning("conversation %s holds too many late results; dropped one of %s", conversation, dropped.name)
        mailbox.held.append(response)
        logger.info("held the late result of %s until conversation %s resumes", response.name, conversation)

    async def held(self, conversation: str) -> int:
        mailbox = self._mailboxes.get(conversation)
        return len(mailbox.held) if mailbox is not None else 0

    def _forget_expired(self) -> None:
        now = self._clock()
        for conversation in [name for name, box in self._mailboxes.items() if box.expires_at <= now]:
            mailbox = self._mailboxes.pop(conversation)
            if mailbox.held:
                logger.info("conversation %s expired with %d late results undelivered", conversation, len(mailbox.held))
