"""Who holds the floor of a local conversation: the rules of turn-taking, events in, effects out.

A ``Floor`` is plain state with no asyncio and no I/O, so a test drives it
synchronously. ``LocalStream`` tells it what happened (speech started, a
turn ended, the final transcript of a turn, typed text, a client turn, a
late tool response, a reply finished) and performs the effects it returns,
in order: it creates the ``UserTurn`` and ``Reply`` objects, then reports
them back (``user_opened``, ``reply_started``) so that the floor holds them
as handles (``U`` and ``R``) and knows them by identity; of a reply it asks
only whether it called a tool (``Replying``).

The floor is held by nobody, by the user (an open turn of speech), by a
reply (committed: its messages go out), or by both when barge-in is off.
While the user pauses, a speculative reply may be prepared behind a gate
(only while no reply holds the floor); when the final transcript agrees
with it and the floor is free it is committed, so it is often already
speaking; otherwise it is dropped unseen. Input that cannot be answered
now (typed text, a late tool response, a client turn) waits, and a reply
to everything that waits starts once neither the user nor a reply holds
the floor; when a reply is over and nothing waits, the dialogue reads the
conversation ahead of the next one (``ReadAhead``).

Barge-in: speech that starts during a reply interrupts it (unless the setup
says ``NO_INTERRUPTION``), and so does typed text or a complete client turn.
A user who runs on after a turn that a short silence ended (a hesitation
taken for the end: speech again sooner than the default silence, while the
reply to that turn still speaks) barges in on its reply, and the rest is
heard as part of one utterance (``ContinueTurn``); the half turn and its
reply leave the history unless the reply called a tool. A transcript the
recogniser was unsure of is answered with a request to say it again.

Late tool responses (a timer firing: ``scheduling: INTERRUPT``) interrupt a
reply but never the user: while the user speaks they wait like
``WHEN_IDLE`` does, for a quiet moment; ``SILENT`` only joins the history.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from assistant.protocol import Content, Part


class Replying(Protocol):
    """What the floor asks of a reply: whether it called a tool (a run-on then leaves it in the history)."""

    @property
    def called_tools(self) -> bool: ...


U = TypeVar("U")  # an open turn of the user's speech
R = TypeVar("R", bound=Replying)  # a reply


@dataclass(frozen=True, slots=True)
class Ended(Generic[U, R]):
    """The last turn of speech and the reply to it, while the user may still run on from it."""

    turn: U
    speech_end: float  # audio time
    content: Content  # the turn in the conversation
    reply: R

    def runs_on(self, reply: R | None, at: float, silence_s: float) -> bool:
        """Speech that starts at ``at`` sooner after this turn than ``silence_s`` (the default silence).

        Only a shortened wait (words and voice sounding complete) can end a
        turn that soon, so the user was hesitating, not done: what follows
        belongs to the same utterance, and the reply to half of it (still
        ``reply``, the one in progress) is cut.
        """
        return reply is self.reply and at - self.speech_end < silence_s

    @property
    def withdrawn_by_run_on(self) -> bool:
        """The turn and its reply leave the history when the user runs on, unless the reply called a tool.

        The call may have done something (a timer set), and the rest of the
        sentence is then a turn of its own.
        """
        return not self.reply.called_tools


@dataclass(frozen=True, slots=True)
class Interrupt(Generic[R]):
    """Stop ``reply`` and tell the client (``interrupted``, cancelled calls, ``turnComplete``)."""

    reply: R


@dataclass(frozen=True, slots=True)
class OpenTurn:
    """Open a new user turn for speech that started at ``at`` (audio time); report it with ``user_opened``."""

    at: float


@dataclass(frozen=True, slots=True)
class ContinueTurn(Generic[U, R]):
    """The user ran on from ``ended``: open a turn that continues it (``user_opened``).

    ``withdraw``: first take ``ended.content`` and all after it (the reply
    to half the sentence) out of the history.
    """

    ended: Ended[U, R]
    withdraw: bool


@dataclass(frozen=True, slots=True)
class FinishTurn(Generic[U]):
    """Decode the final transcript of ``turn`` and report it with ``heard``."""

    turn: U
    speech_end: float | None  # audio time when the VAD ended the turn, None when the client did


@dataclass(frozen=True, slots=True)
class CarryInto(Generic[U]):
    """The user ran on into ``turn`` while the one before was being finished: ``text`` leads it."""

    turn: U
    text: str


@dataclass(frozen=True, slots=True)
class CommitPrepared(Generic[R]):
    """Open the gate of the speculative ``reply``: its conversation becomes the session's."""

    reply: R


@dataclass(frozen=True, slots=True)
class DropPrepared(Generic[R]):
    """Stop the speculative ``reply`` unseen."""

    reply: R


@dataclass(frozen=True, slots=True)
class AddToHistory:
    """Append ``turns`` to the conversation without replying to them."""

    turns: tuple[Content, ...]


@dataclass(frozen=True, slots=True)
class StartReply:
    """Append ``turns`` (what waited) to the conversation and start a committed reply (``reply_started``).

    ``ask_again``: the reply asks the user to say it again instead of answering (the recogniser was unsure).
    """

    turns: tuple[Content, ...]
    ask_again: bool = False


@dataclass(frozen=True, slots=True)
class KeepEnded(Generic[U]):
    """Find ``text`` in the conversation and report the ended turn with ``keep_ended``: the user may run on."""

    turn: U
    speech_end: float
    text: str


@dataclass(frozen=True, slots=True)
class ReadAhead:
    """A reply is over and nobody takes the floor: the dialogue may read the conversation ahead of the next."""


Effect = (  # generic in U, then R: the order in which they first appear
    ContinueTurn[U, R] | Interrupt[R] | OpenTurn | FinishTurn[U] | CarryInto[U] | CommitPrepared[R]
    | DropPrepared[R] | AddToHistory | StartReply | KeepEnded[U] | ReadAhead
)


@dataclass
class Floor(Generic[U, R]):
    """The floor's state and its rules; every event returns the effects to perform, in order."""

    interrupts: bool  # speech and typed text barge in on a reply (not under NO_INTERRUPTION)
    silence_s: float  # the default silence that ends a turn; speech sooner after a turn runs on from it
    user: U | None = None
    reply: R | None = None  # always committed; a speculative reply is held by the user's turn
    ended: Ended[U, R] | None = None
    waiting: deque[Content] = field(default_factory=deque)  # input that waits for a quiet moment
    reply_requested: bool = False  # a complete client turn with nothing in it: reply to the history
    ask_again: bool = False  # the next reply asks the user to say it again
    closed: bool = False

    @property
    def may_prepare(self) -> bool:
        """A speculative reply is worth preparing: no reply holds the floor, so it could be committed."""
        return self.reply is None and not self.closed

    # -- reports of what the driver created -----------------------------------------

    def user_opened(self, turn: U) -> None:
        self.user = turn

    def reply_started(self, reply: R) -> None:
        self.reply = reply

    def keep_ended(self, turn: U, speech_end: float, content: Content) -> None:
        if self.reply is not None:
            self.ended = Ended(turn, speech_end, content, self.reply)

    # -- events ------------------------------------------------------------------------

    def speech_started(self, at: float) -> list[Effect[U, R]]:
        """The user started speaking (VAD onset or ``activityStart``) at audio time ``at``."""
        ended, self.ended = self.ended, None
        barging_in = self.reply is not None and self.interrupts
        runs_on = barging_in and ended is not None and ended.runs_on(self.reply, at, self.silence_s)
        effects = self._interrupt() if barging_in else []
        if self.user is not None:
            return effects
        if runs_on and ended is not None:
            effects.append(ContinueTurn(ended, ended.withdrawn_by_run_on))
        else:
            effects.append(OpenTurn(at))
        return effects

    def turn_ended(self, speech_end: float | None = None) -> list[Effect[U, R]]:
        """The user is done; ``speech_end`` (audio time) when the VAD decided, so they may still run on."""
        user, self.user = self.user, None
        return [] if user is None else [FinishTurn(user, speech_end)]

    def heard(
        self,
        turn: U,
        text: str,
        speech_end: float | None,
        *,
        unsure: bool = False,
        prepared: R | None = None,
        prepared_matches: bool = False,
    ) -> list[Effect[U, R]]:
        """The final transcript of ``turn`` (ended at ``speech_end``) and the reply prepared in its pause.

        ``prepared_matches``: ``prepared`` answers exactly ``text`` on the history as it is now.
        """
        dropped: list[Effect[U, R]] = [] if prepared is None else [DropPrepared(prepared)]
        if not text:
            return dropped + self._start_waiting()  # a noise held the floor: what waited for it goes on now
        if self.user is not None:
            # the user ran on into a new turn while this one was being finished: one utterance
            return [CarryInto(self.user, f"{text} "), *dropped]
        if unsure:
            self.ask_again = True
            return dropped + self._queue(_user_content(text))
        floor_free = self.reply is None
        if prepared is not None and prepared_matches and floor_free:
            self.reply = prepared
            effects: list[Effect[U, R]] = [CommitPrepared(prepared)]
        else:
            effects = dropped + self._queue(_user_content(text))
        if floor_free and speech_end is not None and self._will_reply(effects):
            effects.append(KeepEnded(turn, speech_end, text))
        return effects

    def typed(self, text: str) -> list[Effect[U, R]]:
        """The client typed ``text`` (``realtimeInput.text``): it barges in on a reply."""
        effects = self._interrupt() if self.interrupts else []
        return effects + self._queue(_user_content(text))

    def client_turns(self, contents: list[Content]) -> list[Effect[U, R]]:
        """A complete ``clientContent`` turn: answer it (and what the user said so far) now."""
        effects = self._interrupt()
        speaking = self.user is not None
        effects += self.turn_ended()  # "answer what you have heard"
        self.waiting.extend(contents)
        if not contents and not speaking:
            self.reply_requested = True
        return effects + self._start_waiting()

    def announce(self, content: Content, scheduling: str) -> list[Effect[U, R]]:
        """A tool's answer came after its reply moved on: say it as ``scheduling`` asks."""
        if scheduling == "SILENT":
            return [AddToHistory((content,))]
        effects = self._interrupt() if scheduling == "INTERRUPT" and self.user is None else []
        return effects + self._queue(content)

    def reply_finished(self, reply: R) -> list[Effect[U, R]]:
        """``reply`` is over (its ``turnComplete`` sent, or it was stopped): what waits may go.

        With nothing waiting and the user silent, the chat model reads ahead
        while the reply plays out and the user thinks.
        """
        if self.reply is not reply:
            return []
        self.reply = None
        effects = self._start_waiting()
        if not effects and self.user is None and not self.closed:
            effects.append(ReadAhead())
        return effects

    def close(self) -> None:
        self.closed = True

    # -- rules ---------------------------------------------------------------------------

    def _interrupt(self) -> list[Effect[U, R]]:
        reply, self.reply = self.reply, None
        return [] if reply is None else [Interrupt(reply)]

    def _queue(self, content: Content) -> list[Effect[U, R]]:
        self.waiting.append(content)
        return self._start_waiting()

    def _start_waiting(self) -> list[Effect[U, R]]:
        """Reply to what waits, once neither the user nor a reply holds the floor."""
        if self.reply is not None or self.user is not None or self.closed:
            return []
        if not self.waiting and not self.reply_requested:
            return []
        turns = tuple(self.waiting)
        self.waiting.clear()
        self.reply_requested = False
        ask_again, self.ask_again = self.ask_again, False
        return [StartReply(turns, ask_again)]

    @staticmethod
    def _will_reply(effects: list[Effect[U, R]]) -> bool:
        return any(isinstance(effect, CommitPrepared | StartReply) for effect in effects)


def _user_content(text: str) -> Content:
    return Content(role="user", parts=[Part(text=text)])
