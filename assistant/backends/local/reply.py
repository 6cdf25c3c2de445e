"""One reply of the local stack: dialogue steps, speech and tool calls, held behind a gate until committed.

A ``Reply`` asks the dialogue what to say or call, speaks text through a
``Speaker`` (first clause early, paced to playback), sends tool calls and
waits for their responses by id, then asks again. A speculative reply (made
while the user pauses) keeps what it prepares until the turn really ends
(``commit``); a barge-in stops it (``stop``), keeping in the history only
what the user heard. The stream (``stream.LocalStream``) owns the floor and
decides when a reply starts and stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from assistant.backends.local.conversation import CallTools, Conversation, Say
from assistant.backends.local.llm import TokenUsage
from assistant.backends.local.speech import PLAYOUT_LEAD_S, PlayoutClock, Speaker, SpokenRecord
from assistant.backends.local.tts import Synthesizer
from assistant.protocol import (
    Content,
    FunctionCall,
    FunctionResponse,
    GenerationComplete,
    Part,
    ReplyText,
    ServerEvent,
    ToolCalls,
    TurnComplete,
    UsageMetadata,
)

if TYPE_CHECKING:
    from assistant.backends.local.stream import LocalStream

logger = logging.getLogger("assistant.local.stream")

TOOL_TIMEOUT_S = 60.0
# A NON_BLOCKING function's answer that comes this soon is spoken in the same turn (a timer's "set");
# a later one is announced when it comes, as its scheduling says, and the turn does not wait for it.
NON_BLOCKING_GRACE_S = 1.0


async def said(event: Say) -> AsyncIterator[Say]:
    """One fixed thing to say, as the dialogue's events."""
    yield event


class Reply:
    """One model turn: dialogue steps, speech, tool calls; gated until committed."""

    def __init__(
        self,
        session: LocalStream,
        conversation: Conversation,
        *,
        committed: bool,
        user_text: str = "",
        fixed: str | None = None,
    ) -> None:
        """``fixed`` is said instead of asking the dialogue (the recogniser was unsure what the user said)."""
        self.session = session
        self.conversation = conversation
        self.user_text = user_text
        self.fixed = fixed
        self.base_turns = len(session.conversation.turns)
        self.playout = PlayoutClock(session.parts.clock)
        self.record = SpokenRecord()
        self.pending: dict[str, asyncio.Future[FunctionResponse]] = {}
        self.stopped = False
        self._committed = asyncio.Event()
        self._buffer: list[tuple[ServerEvent, float]] = []
        self._buffered_s = 0.0
        self._speaker: Speaker | None = None
        self._text_turns: list[tuple[int, int, int]] = []  # conversation index, first and last piece
        self._milestones: list[tuple[str, float]] = []  # reached before the commit, reported at it
        self._reached: set[str] = set()
        self._tokens: TokenUsage | None = None  # summed over the reply's chat model steps
        self._ends_turn: str | None = None  # the turnCompleteReason the dialogue gave
        if committed:
            self._committed.set()
        self.task = session.spawn(self._run(), "reply")

    @property
    def committed(self) -> bool:
        return self._committed.is_set()

    @property
    def called_tools(self) -> bool:
        """This reply asked for a function call, which may have done something (see ``floor.Replying``)."""
        return bool(self.pending)

    def milestone(self, name: str) -> None:
        """Note the first time the reply reaches ``name`` (reported once the reply is real)."""
        if name in self._reached:
            return
        self._reached.add(name)
        if self.committed:
            self.session.milestone(name)
        else:
            self._milestones.append((name, self.session.parts.clock()))

    def commit(self) -> None:
        """Open the gate: what the reply prepared goes out now."""
        self._committed.set()
        for name, at in self._milestones:
            self.session.milestone(name, at)
        for message, seconds in self._buffer:
            self._send(message, seconds)
        self._buffer.clear()
        self._buffered_s = 0.0

    def usage(self) -> UsageMetadata | None:
        """The chat model's token counts for this reply, as Live's ``usageMetadata``; None if no model ran."""
        if self._tokens is None:
            return None
        prompt, response = self._tokens.prompt_tokens, self._tokens.response_tokens
        return UsageMetadata(
            prompt_token_count=prompt, response_token_count=response, total_token_count=prompt + response
        )

    def turn_done(self) -> TurnComplete:
        """This reply's ``turnComplete``, with its token counts and the reason the dialogue gave, if any."""
        return TurnComplete(self._ends_turn, self.usage())

    def waiting_for(self, call_id: str | None) -> bool:
        future = self.pending.get(call_id or "")
        return future is not None and not future.done()

    def deliver(self, response: FunctionResponse) -> None:
        self.pending[response.id or ""].set_result(response)

    def stop(self) -> list[str]:
        """Stop now; keep in the history only what was heard. Returns the unanswered call ids."""
        self.stopped = True
        self.task.cancel()
        if not self.committed and self.pending:  # every call made before the commit was offered early
            self.session.drop_early_calls(list(self.pending))
        if self._speaker is not None:
            self._speaker.cancel()
        unanswered = [call_id for call_id, future in self.pending.items() if not future.done()]
        for future in self.pending.values():
            future.cancel()
        played = self.playout.played() if self.session.speak_audio else float("inf")
        for index, first, last in reversed(self._text_turns):
            heard = self.record.heard(played, first, last).strip()
            if heard:
                self.conversation.turns[index] = Content(role="model", parts=[Part(text=heard)])
            else:
                del self.conversation.turns[index]
        if unanswered:
            cancelled = [
                FunctionResponse(id=call_id, response={"error": "cancelled: the user interrupted"})
                for call_id in unanswered
            ]
            self.conversation.turns.append(Content(role="user", parts=[Part(function_response=r) for r in cancelled]))
        return unanswered

    async def emit(self, message: ServerEvent, audio_s: float = 0.0) -> None:
        """Send (or hold, until committed) one message, keeping playback at most the lead ahead."""
        while not self.stopped:
            if not self.committed:
                if self._buffered_s <= PLAYOUT_LEAD_S:
                    self._buffer.append((message, audio_s))
                    self._buffered_s += audio_s
                    return
                await self._committed.wait()
                continue
            until_room = self.playout.ahead() - PLAYOUT_LEAD_S
            if until_room > 0:
                # One wait for exactly that long, then send: the clock read again may still be a hair short,
                # and on a clock that ticks coarsely (or a virtual one) checking again would spin.
                await self.session.parts.sleep(until_room)
            self._send(message, audio_s)  # unless a barge-in stopped the reply meanwhile
            return

    def _send(self, message: ServerEvent, audio_s: float) -> None:
        if self.stopped:
            return
        self.session.put(message)
        if audio_s:
            self.milestone("first_audio")
            self.playout.sent(audio_s)

    async def _run(self) -> None:
        session = self.session
        try:
            while True:
                calls = await self._step()
                if not calls or not await self._call(calls):
                    break
            await self.emit(GenerationComplete())
            await self._committed.wait()
            await self.session.parts.sleep(self.playout.ahead())  # barge-in still applies until playback ends
            await self.emit(self.turn_done())
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("reply failed")
            if not self.stopped:
                await self.emit(self.turn_done())
        finally:
            session.reply_finished(self)

    async def _step(self) -> list[FunctionCall]:
        """One dialogue step: speak its text; return the calls it asks for."""
        session = self.session
        calls: list[FunctionCall] = []
        first_piece = len(self.record.pieces)
        text = ""
        events = (
            said(Say(self.fixed, ends_turn="NEED_MORE_INPUT"))
            if self.fixed
            else session.dialogue.respond(self.conversation, session.generation)
        )
        async for event in events:
            if isinstance(event, CallTools):
                calls.extend(event.calls)
                continue
            if isinstance(event, TokenUsage):
                spent = self._tokens or TokenUsage(0, 0)
                self._tokens = TokenUsage(
                    spent.prompt_tokens + event.prompt_tokens, spent.response_tokens + event.response_tokens
                )
                continue
            if isinstance(event, Say) and event.ends_turn:
                self._ends_turn = event.ends_turn
            self.milestone("first_token")
            text += event.text
            if not session.speak_audio:
                await self.emit(ReplyText(event.text))
                continue
            voice = session.voice if isinstance(event, Say) else session.parts.voices.select(f"espeak:{event.voice}")
            (await self._speaker_with(voice)).feed(event.text)
        if self._speaker is not None:
            await self._speaker.finish()
            self._speaker = None
        if text.strip():
            self.conversation.turns.append(Content(role="model", parts=[Part(text=text.strip())]))
            self._text_turns.append((len(self.conversation.turns) - 1, first_piece, len(self.record.pieces)))
        return calls

    async def _answered_or_committed(self) -> None:
        """Wait until every call is answered (read-only calls run early) or the reply is committed.

        Answers that come before the commit let the reply prepare what it
        says about them behind the gate; a call that does not run early
        (one that changes something) waits for the commit, as it must.
        """
        if self.committed:
            return
        committed = asyncio.ensure_future(self._committed.wait())
        answered = asyncio.ensure_future(asyncio.wait(self.pending.values()))
        try:
            await asyncio.wait((committed, answered), return_when=asyncio.FIRST_COMPLETED)
        finally:
            committed.cancel()
            answered.cancel()

    async def _speaker_with(self, voice: Synthesizer) -> Speaker:
        """The speaker for ``voice``: the current one, or a new one once the other voice has finished."""
        if self._speaker is not None and self._speaker.voice is not voice:
            await self._speaker.finish()
            self._speaker = None
        if self._speaker is None:
            session = self.session
            self._speaker = Speaker(
                voice,
                session.parts.tts_executor,
                self.emit,
                first_in_reply=not self.record.pieces,
                transcribe=session.output_transcripts,
                record=self.record,
            )
        return self._speaker

    async def _call(self, calls: list[FunctionCall]) -> bool:
        """Make the calls and wait for their answers; False when nothing was answered to go on with.

        A NON_BLOCKING function that has not answered within
        ``NON_BLOCKING_GRACE_S`` is not waited for: the turn ends, and its
        answer is announced when it comes (``_on_tool_response``).
        """
        loop = asyncio.get_running_loop()
        for call in calls:
            assert call.id is not None
            self.pending[call.id] = loop.create_future()
        background = {call.id for call in calls if self.session.runs_in_background(call.name)}
        self.conversation.turns.append(Content(role="model", parts=[Part(function_call=call) for call in calls]))
        self.milestone("tool_call")
        if not self.committed:
            self.session.call_early(self, calls)  # not held: the session may run the read-only ones now
        await self.emit(ToolCalls(calls))
        await self._answered_or_committed()
        all_background = len(background) == len(calls)
        timeout = NON_BLOCKING_GRACE_S if all_background else TOOL_TIMEOUT_S
        done, _ = await asyncio.wait(self.pending.values(), timeout=timeout)
        self.milestone("tool_response")
        responses = []
        for call in calls:
            future = self.pending[call.id or ""]
            if future in done:
                responses.append(future.result())
                continue
            future.cancel()
            if call.id in background:
                continue  # answered later, announced then
            responses.append(
                FunctionResponse(id=call.id, name=call.name, response={"error": f"{call.name} did not answer"})
            )
        if not responses:
            return False
        self.conversation.turns.append(Content(role="user", parts=[Part(function_response=r) for r in responses]))
        return True
