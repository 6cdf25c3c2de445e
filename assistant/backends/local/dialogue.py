"""The dialogue policies: from the conversation so far to what to say or which tools to call.

``Dialogue.respond`` (the seam is in ``conversation``) reads a
``Conversation`` (system instruction, turns as Live ``Content``, the
declared tools) and yields ``Say`` text as it is generated and
``CallTools`` when tools must run first. The session runs the calls (or
the client does), appends the responses to the conversation and asks
again, so a dialogue never waits on a tool itself. Two kinds:

- ``RouterDialogue``, the offline default: everyday requests go to the
  built-in tools through the embedding router with deterministic
  arguments, and the answers are spoken from templates; questions about
  what the user said earlier are answered from the conversation
  (``recollect``); a quoted passage's original is read aloud when asked
  (``originals``); questions about the assistant itself and asks nothing
  offline can serve are answered from the session's facts (``about``); in a session that consults its knowledge first (a
  persona), questions go to ``search_knowledge``; everything else is
  conversation with the small chat model, which is offered no tools and
  whose words pass a guard (``guard``) against loops, echoes and noise;
  bare thanks, greetings and goodbyes need no model at all.
- ``ModelDialogue``: a capable model (a bigger GGUF, an OpenAI-compatible
  server) chooses tools itself, with schema-valid calls (see ``llm``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from assistant.backends.local import about, extract
from assistant.backends.local.chat_tools import ToolSpec
from assistant.backends.local.conversation import CallTools, Conversation, DialogueEvent, ReadAloud, Say
from assistant.backends.local.cues import cue_boosts
from assistant.backends.local.guard import ReplyGuard
from assistant.backends.local.llm import (
    ChatEvent,
    ChatMessage,
    ChatModel,
    GenerationSettings,
    StopGeneration,
    TokenUsage,
    ToolCalls,
)
from assistant.backends.local.originals import asks_for_original, last_original
from assistant.backends.local.phrasing import ASK_FOR, phrase_response
from assistant.backends.local.recollect import recollection
from assistant.backends.local.router import FACTS, Intent, Route, ToolRouter
from assistant.protocol import FunctionCall, FunctionResponse

logger = logging.getLogger("assistant.local.dialogue")

DEFAULT_PERSONA = (
    "You are a friendly voice assistant that runs entirely on this computer. "
    "Answer in one or two short, plain sentences that sound natural when spoken. No lists, no markup."
)
# Close to what SmolLM2-135M was tuned with ("You are a helpful AI assistant"): longer instructions make it
# recite them instead of answering. It says what the assistant is and what it lacks (what it cannot know
# is caught before the model: general questions get ``about.NO_FACTS``).
SMALL_MODEL_PERSONA = (
    "You are a friendly voice assistant that runs offline on this computer, with no internet. Keep answers short."
)
CHAT_HISTORY_MESSAGES = 8  # the small model's context is short and it drifts on long histories
CHAT_MAX_SENTENCES = 2  # small talk is spoken: one or two sentences
# Said when the guard stopped the chat model before it said anything useful.
FALLBACK = "Sorry, I lost my words there. Could you put that another way?"


def is_question(text: str) -> bool:
    """A question of a few words, as Whisper punctuates it: a cue that the user has finished."""
    return text.rstrip().endswith("?") and len(text.split()) >= 3


# Verbs that open a spoken ask of the chat model ("Tell me a joke.", "Explain black holes.").
_ASKING_VERBS = frozenset("tell explain describe give say sing recommend suggest name list define teach recite".split())


def is_ask(text: str) -> bool:
    """An ask of a few words that opens with an asking verb and that Whisper closed with a full stop.

    Such a turn is as finished as a question; a hesitation after it ("Tell
    me a story. ... About a dragon.") runs on, and is heard as one utterance.
    """
    words = text.split()
    return (
        text.rstrip().endswith((".", "!"))
        and len(words) >= 3
        and words[0].lower().strip(",") in _ASKING_VERBS
    )


def is_request(text: str) -> bool:
    """A question or an ask: the words alone say the user is done."""
    return is_question(text) or is_ask(text)


# Words a request does not end on: the sentence goes on after a pause ("What time is it in... Tokyo?",
# "Remember that my sister's... birthday"). Whisper punctuates such a fragment as if it were whole.
_TRAILING_WORDS = frozenset(
    "a an the my your our their his its and or but because if than to of in on at for with from by about into "
    "like as".split()
)
_CONTRACTED_IS = frozenset("it's what's that's there's here's who's where's how's let's he's she's".split())


def trails_off(text: str) -> bool:
    """The last word leaves the sentence open (an article, a preposition, a conjunction, a possessive).

    Only the shortcut depends on it: such a turn waits for the full silence.
    Some whole questions end on a preposition ("What is it for?"); they wait
    the full silence too, a small cost next to answering half a sentence.
    """
    words = re.findall(r"[\w']+", text.lower().replace("\u2019", "'"))
    if not words:
        return False
    last = words[-1]
    return last in _TRAILING_WORDS or (last.endswith("'s") and last not in _CONTRACTED_IS)


# A fact shorter than this names something more often than it states something: "Remember that my sisters."
# is heard (with Whisper's full stop) before "... birthday is in May". Such a request may still be whole; it
# waits for the full silence rather than ending the turn on the shortcut.
MIN_FACT_WORDS = 3


def _names_without_stating(tool: str | None, arguments: dict[str, Any]) -> bool:
    """A ``remember`` whose fact is only a noun phrase so far: the sentence likely goes on."""
    return tool == "remember" and len(str(arguments.get("fact", "")).split()) < MIN_FACT_WORDS


def new_call_id() -> str:
    return f"call-{secrets.token_hex(6)}"


@dataclass(frozen=True, slots=True)
class _RoutedCall:
    intent: Intent
    details: dict[str, Any]  # what the phrasing needs beyond the tool's arguments (a place name)


class RouterDialogue:
    """Built-in tools by meaning with deterministic arguments; small talk with the chat model."""

    def __init__(
        self,
        router: ToolRouter,
        chat: ChatModel | None,
        *,
        now: Callable[[], datetime] = lambda: datetime.now().astimezone(),
        persona: str = SMALL_MODEL_PERSONA,
        chat_knows_facts: bool = False,
    ) -> None:
        """``chat_knows_facts``: the chat model is capable enough to answer general questions (not SmolLM2-135M)."""
        self.router = router
        self.chat = chat
        self.chat_knows_facts = chat_knows_facts and chat is not None
        self.now = now
        self.persona = persona
        self._calls: dict[str, _RoutedCall] = {}
        self._awaiting: Intent | None = None
        self._last_route: tuple[str, frozenset[str], bool, Route] | None = None

    async def _route_text(self, text: str, declared: set[str], consulting: bool = False) -> Route:
        """The router's verdict, off the event loop (an embedding), remembered for the same text."""
        key = frozenset(declared)
        if self._last_route is not None and self._last_route[:3] == (text, key, consulting):
            return self._last_route[3]
        route = await asyncio.to_thread(
            functools.partial(self.router.route, text, declared, cue_boosts(text, self.now()), consulting=consulting)
        )
        self._last_route = (text, key, consulting, route)
        return route

    async def sounds_complete(self, text: str, declared: set[str]) -> bool:
        """A question, or a tool request that has everything the tool needs, that does not trail off."""
        if trails_off(text):
            return False
        if is_request(text):
            return True
        route = await self._route_text(text, declared)
        if route.intent is None:
            return False
        arguments = self._arguments(route.intent, text)
        return isinstance(arguments, tuple) and not _names_without_stating(route.intent.tool, arguments[0])

    async def respond(self, conversation: Conversation, settings: GenerationSettings) -> AsyncIterator[DialogueEvent]:
        responses = conversation.pending_responses()
        if responses:
            calls = conversation.calls_by_id()
            for response in responses:
                yield Say(self._phrase(response, calls.get(response.id or "")) + " ")
            return
        text = conversation.last_text("user")
        if not text:
            return
        recalled = recollection(text, conversation.user_texts()[:-1])
        if recalled is not None:
            yield Say(recalled)
            return
        original = last_original(conversation.turns)
        if original is not None and asks_for_original(text, original):
            yield ReadAloud(" ".join(original.text.split()), original.voice)  # its lines are one recitation
            return
        routed = await self._route(text, conversation)
        if isinstance(routed, str):
            yield Say(routed, ends_turn="NEED_MORE_INPUT" if self._awaiting is not None else None)
            return
        if routed is not None:
            yield CallTools([routed])
            return
        polite = about.courtesy(text)
        if polite is not None:
            yield Say(polite)
            return
        if self.chat is None:
            yield Say("Sorry, I can only help with the time, sums, timers, reminders and notes right now.")
            return
        async for said in guarded_chat(self.chat, self._chat_messages(conversation), settings):
            yield said

    async def prepare(self, conversation: Conversation) -> None:
        if self.chat is not None:
            await self.chat.prefill(self._chat_messages(conversation, coming=1), [])

    def _chat_messages(self, conversation: Conversation, coming: int = 0) -> list[ChatMessage]:
        return conversation.chat_messages(self.persona, with_tools=False, limit=CHAT_HISTORY_MESSAGES, coming=coming)

    async def _route(self, text: str, conversation: Conversation) -> FunctionCall | str | None:
        """A call, a sentence to say (a question for what is missing, an answer about itself), or None for chat."""
        declared = conversation.tool_names
        awaited, self._awaiting = self._awaiting, None
        if awaited is not None and awaited.tool in declared:
            answer = self._arguments(awaited, text)
            if answer is not None:
                return self._call(awaited, *answer)
        route = await self._route_text(text, declared, conversation.consults_knowledge)
        if route.intent is not None and route.intent.name == FACTS and self.chat_knows_facts:
            return None
        if route.intent is not None and route.intent.self_answered:
            return about.answer(route.intent.name, self.session_facts(conversation))
        if route.intent is None or route.intent.tool is None:
            return None
        answer = self._arguments(route.intent, text)
        if answer is None:
            self._awaiting = route.intent
            return ASK_FOR.get(route.intent.tool, "Could you say that again with a few more details?")
        if isinstance(answer, str):
            return answer
        return self._call(route.intent, *answer)

    def session_facts(self, conversation: Conversation) -> about.SessionFacts:
        """What this session has: the declared tools the router can call, the camera, the instruction."""
        routable = {intent.tool for intent in self.router.intents if intent.tool}
        return about.SessionFacts(
            tools=conversation.tool_names & routable,
            instruction=conversation.system_instruction,
            video=conversation.video,
            consulting=conversation.consults_knowledge,
            chats=self.chat is not None,
        )

    def _call(self, intent: Intent, args: dict[str, Any], details: dict[str, Any]) -> FunctionCall:
        assert intent.tool is not None
        call = FunctionCall(id=new_call_id(), name=intent.tool, args=args)
        assert call.id is not None
        self._calls[call.id] = _RoutedCall(intent, details)
        return call

    def _arguments(self, intent: Intent, text: str) -> tuple[dict[str, Any], dict[str, Any]] | str | None:
        """The tool's arguments and phrasing details; a sentence to say instead; None when missing."""
        tool = intent.tool
        if tool == "get_current_time":
            place = extract.named_place(text)
            if place is None:
                return {}, {}
            zone = extract.timezone_for(place)
            if zone is None:
                return f"Sorry, I don't know the time zone of {place.title()}."
            return {"timezone": zone}, {"place": place.title()}
        if tool == "calculate":
            expression = extract.arithmetic_expression(text)
            return ({"expression": expression}, {}) if expression else None
        if tool == "set_timer":
            seconds = extract.duration_seconds(text)
            if seconds is None:
                return None
            label = extract.timer_label(text)
            return ({"seconds": seconds, "label": label} if label else {"seconds": seconds}), {}
        if tool == "set_reminder":
            found = extract.reminder(text, self.now())
            if found is None or found[1] is None:
                return None
            return {"text": found[0], "seconds": found[1]}, {}
        if tool == "remember":
            fact = extract.fact_to_remember(text)
            return ({"fact": fact}, {}) if fact else None
        if tool == "recall":
            return {"query": extract.recall_query(text)}, {}
        if tool == "search_knowledge":
            return {"query": extract.search_query(text)}, {}
        return {}, {}

    def _phrase(self, response: FunctionResponse, call: FunctionCall | None) -> str:
        routed = self._calls.get(response.id or "")
        name = response.name or (call.name if call else "")
        args = dict(call.args) if call else {}
        if routed is not None:
            args.update(routed.details)
        return phrase_response(name, routed.intent.name if routed else None, args, response.response)


async def guarded_chat(
    chat: ChatModel, messages: list[ChatMessage], settings: GenerationSettings
) -> AsyncIterator[Say | TokenUsage]:
    """The chat model's reply through a ``ReplyGuard``: a loop, an echo or noise stops the generation.

    A reply stopped before it said anything useful ends with ``FALLBACK``
    instead, so the user hears a sentence, not a stutter or silence. The
    model's token counts pass through; a generation the guard stops is asked
    for its count so far (``StopGeneration``), so the turn's usage stays whole.
    """
    said = messages[-1].content if messages and messages[-1].role == "user" else ""
    guard = ReplyGuard(echo_of=said, max_sentences=CHAT_MAX_SENTENCES)
    stream = chat.stream(messages, [], settings)
    try:
        async for event in stream:
            if isinstance(event, TokenUsage):
                yield event
                continue
            if isinstance(event, ToolCalls):
                continue
            released = guard.feed(event.text)
            if released:
                yield Say(released)
            if guard.stopped is not None:
                logger.info("chat reply stopped: %s", guard.stopped)
            if guard.stopped is not None or guard.complete:
                spent = await _stop_generation(stream)
                if spent is not None:
                    yield spent
                break
    finally:
        close = getattr(stream, "aclose", None)  # stops the generation thread at once
        if close is not None:
            await close()
    rest = guard.finish()
    if rest:
        yield Say(rest)
    if guard.stopped is not None and not guard.said_enough:
        yield Say(FALLBACK)


async def _stop_generation(stream: AsyncIterator[ChatEvent]) -> TokenUsage | None:
    """Stop a chat stream early and get what it cost (``StopGeneration``); None where it does not say."""
    throw = getattr(stream, "athrow", None)
    if throw is None:
        return None
    try:
        event = await throw(StopGeneration())
    except (StopGeneration, StopAsyncIteration):
        return None
    return event if isinstance(event, TokenUsage) else None


class ModelDialogue:
    """A capable chat model with the session's tools (schema-valid calls by construction)."""

    def __init__(self, chat: ChatModel, persona: str = DEFAULT_PERSONA) -> None:
        self.chat = chat
        self.persona = persona

    async def sounds_complete(self, text: str, declared: set[str]) -> bool:
        return is_request(text) and not trails_off(text)

    async def prepare(self, conversation: Conversation) -> None:
        await self.chat.prefill(*self._prompt(conversation))

    def _prompt(self, conversation: Conversation) -> tuple[list[ChatMessage], list[ToolSpec]]:
        tools = [ToolSpec.from_declaration(declaration) for declaration in conversation.tools]
        return conversation.chat_messages(self.persona, with_tools=True), tools

    async def respond(self, conversation: Conversation, settings: GenerationSettings) -> AsyncIterator[DialogueEvent]:
        messages, tools = self._prompt(conversation)
        async for event in self.chat.stream(messages, tools, settings):
            if isinstance(event, ToolCalls):
                for name, problem in event.invalid:
                    yield Say(f"Sorry, I couldn't use {name}: {problem}. ", ends_turn="MALFORMED_FUNCTION_CALL")
                if event.calls:
                    yield CallTools(
                        [FunctionCall(id=new_call_id(), name=name, args=args) for name, args in event.calls]
                    )
            elif isinstance(event, TokenUsage):
                yield event
            else:
                yield Say(event.text)
