"""What a dialogue sees and what it says: the seam between the local stream and a dialogue policy.

The stream keeps the ``Conversation`` (the session's record, only appended
to) and plays what a ``Dialogue`` yields: ``Say`` and ``ReadAloud`` are
spoken, ``CallTools`` are run by the session (or the client) and their
responses appended before the dialogue is asked again. This module is
apart from the policies (``dialogue``) so that the stream, the reply and
the tests depend on the seam, not on the router and the chat models behind
it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from assistant.backends.local.llm import ChatMessage, ChatToolCall, GenerationSettings, TokenUsage
from assistant.backends.local.originals import SEARCH_TOOL
from assistant.protocol import Content, FunctionCall, FunctionDeclaration, FunctionResponse


@dataclass(frozen=True, slots=True)
class Say:
    """Text to speak, as it is generated."""

    text: str
    # a Live turnCompleteReason the turn ends with: NEED_MORE_INPUT for a question back to the user,
    # MALFORMED_FUNCTION_CALL for a call that could not be made
    ends_turn: str | None = None


@dataclass(frozen=True, slots=True)
class ReadAloud:
    """Text to speak in another voice: an original read by espeak-ng's ``voice`` (Tamil: ``ta``)."""

    text: str
    voice: str


@dataclass(frozen=True, slots=True)
class CallTools:
    """Calls to run before the reply continues (each with an id)."""

    calls: list[FunctionCall]


DialogueEvent = Say | ReadAloud | CallTools | TokenUsage  # TokenUsage: what a chat model's step cost


@dataclass
class Conversation:
    """What the dialogue sees: it is the session's record, only appended to."""

    system_instruction: str | None = None
    turns: list[Content] = field(default_factory=list)
    tools: list[FunctionDeclaration] = field(default_factory=list)
    video: bool = False  # the client has sent a camera or screen frame in this session

    @property
    def tool_names(self) -> set[str]:
        return {tool.name for tool in self.tools}

    @property
    def consults_knowledge(self) -> bool:
        """Whether the instruction makes ``search_knowledge`` the first resort (a persona such as Thiruvalluvar).

        The router cannot read instructions; a session whose instruction
        names the search tool it offers is one that wants questions answered
        from its knowledge, as a capable model would read it.
        """
        return SEARCH_TOOL in self.tool_names and SEARCH_TOOL in (self.system_instruction or "")

    def calls_by_id(self) -> dict[str, FunctionCall]:
        return {
            part.function_call.id: part.function_call
            for turn in self.turns
            for part in turn.parts
            if part.function_call is not None and part.function_call.id
        }

    def user_texts(self) -> list[str]:
        """What the user said, turn by turn, oldest first."""
        return [turn.text().strip() for turn in self.turns if turn.role == "user" and turn.text().strip()]

    def last_text(self, role: str) -> str:
        """What ``role`` ("user" or "model") said last; the model's is the recogniser's prompt for the next turn."""
        for turn in reversed(self.turns):
            if turn.role == role and turn.text().strip():
                return turn.text().strip()
        return ""

    def pending_responses(self) -> list[FunctionResponse]:
        """Tool responses at the end of the conversation, not yet answered."""
        if not self.turns:
            return []
        last = self.turns[-1]
        return [part.function_response for part in last.parts if part.function_response is not None]

    def chat_messages(
        self, persona: str, with_tools: bool, limit: int | None = None, coming: int = 0
    ) -> list[ChatMessage]:
        """The conversation as chat messages; tool traffic is left out when ``with_tools`` is False.

        ``limit`` keeps at most that many recent messages, but the oldest leave
        in steps of half of it, so the prompt's beginning (what the chat model
        has already read, see ``ChatModel.prefill``) changes only every few
        exchanges instead of with every one. ``coming``: messages still to
        come (the user's next, for a read-ahead), so the window is the one the
        prompt that follows them will have.
        """
        messages: list[ChatMessage] = []
        for turn in self.turns:
            calls = [part.function_call for part in turn.parts if part.function_call is not None]
            responses = [part.function_response for part in turn.parts if part.function_response is not None]
            text = turn.text().strip()
            if calls and with_tools:
                messages.append(
                    ChatMessage(
                        "assistant",
                        tool_calls=tuple(ChatToolCall(c.id or "", c.name, dict(c.args)) for c in calls),
                    )
                )
            for response in responses if with_tools else []:
                messages.append(
                    ChatMessage(
                        "tool",
                        json.dumps(response.response or {}, default=str),
                        tool_call_id=response.id,
                        name=response.name,
                    )
                )
            if text:
                messages.append(ChatMessage("assistant" if turn.role == "model" else "user", text))
        merged = _merge_consecutive(messages)
        system = self.system_instruction or persona
        return [ChatMessage("system", system), *merged[window_start(len(merged) + coming, limit) :]]


def window_start(count: int, limit: int | None) -> int:
    """The first of ``count`` messages to keep: at most ``limit`` kept, the start moving in steps of ``limit // 2``."""
    if not limit or count <= limit:
        return 0
    step = max(1, limit // 2)
    return -(-(count - limit) // step) * step


def _merge_consecutive(messages: list[ChatMessage]) -> list[ChatMessage]:
    """Join neighbouring plain messages of one role (chat templates expect alternation)."""
    merged: list[ChatMessage] = []
    for message in messages:
        previous = merged[-1] if merged else None
        plain = not message.tool_calls and message.role in ("user", "assistant")
        if previous and plain and previous.role == message.role and not previous.tool_calls:
            merged[-1] = ChatMessage(message.role, f"{previous.content} {message.content}".strip())
        else:
            merged.append(message)
    return merged


class Dialogue(Protocol):
    """One session's dialogue policy."""

    def respond(self, conversation: Conversation, settings: GenerationSettings) -> AsyncIterator[DialogueEvent]:
        """What to say or call next, given the conversation so far."""
        ...

    async def sounds_complete(self, text: str, declared: set[str]) -> bool:
        """Whether ``text`` is already a whole request (the turn may end after a shorter silence)."""
        ...

    async def prepare(self, conversation: Conversation) -> None:
        """Let the chat model read the conversation so far while the floor is idle, so the next reply starts sooner."""
        ...
