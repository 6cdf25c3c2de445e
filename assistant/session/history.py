"""The conversation as a list of turns, recorded from what crosses the session.

Every backend reports what the user said (input transcription, typed text,
client turns) and what the model said (output transcription or text parts,
tool calls) in the same server events, so one recorder here gives both
backends the same history for resumption, whatever they keep internally.
Transcription arrives in fragments that clients join; so does this.

The log is bounded in turns and in bytes (text and images, as
``approx_bytes`` weighs them), so a client sending megabytes of
``clientContent`` cannot grow it, nor what the resumption store saves.
Like Gemini's context window compression with a sliding window, the oldest
turns go first, and the kept history starts where a user turn starts (not
with a model reply or a tool result whose call was dropped). Text still
being joined keeps its newest part, at most half the cap.
"""

from __future__ import annotations

from collections import deque

from assistant.protocol import (
    ClientEvent,
    ClientTurns,
    Content,
    FunctionResponse,
    InputTranscript,
    Interrupted,
    OutputTranscript,
    Part,
    ReplyParts,
    ReplyText,
    ServerEvent,
    TextInput,
    ToolCalls,
    ToolResponses,
    TurnComplete,
)
from assistant.session.limits import DEFAULT_HISTORY_BYTES, approx_bytes

DEFAULT_MAX_TURNS = 200


class ConversationLog:
    """Turns in order, newest last, at most ``max_turns`` of them and ``max_bytes`` in all."""

    def __init__(
        self,
        history: list[Content] | None = None,
        max_turns: int = DEFAULT_MAX_TURNS,
        max_bytes: int = DEFAULT_HISTORY_BYTES,
    ) -> None:
        self.max_turns = max_turns
        self.max_bytes = max_bytes
        self._turns: deque[tuple[Content, int]] = deque()
        self.bytes = 0
        self.dropped_turns = 0
        self._user_text = ""
        self._model_text = ""
        for turn in history or []:
            self._append(turn)

    @property
    def turns(self) -> list[Content]:
        """The completed turns kept, oldest first."""
        return [turn for turn, _ in self._turns]

    # -- what the user said ------------------------------------------------

    def client_event(self, event: ClientEvent) -> None:
        if isinstance(event, TextInput) and event.text:
            self._flush_model()
            self._append(Content(role="user", parts=[Part(text=event.text)]))
        elif isinstance(event, ClientTurns):
            self._flush_user()
            self._flush_model()
            for turn in event.turns:
                self._append(turn.model_copy(update={"role": turn.role or "user"}))
        elif isinstance(event, ToolResponses):
            self.tool_results(event.responses)

    def tool_results(self, responses: list[FunctionResponse]) -> None:
        self._flush_model()
        self._append(Content(role="user", parts=[Part(function_response=r) for r in responses]))

    # -- what the model said -----------------------------------------------

    def server_event(self, event: ServerEvent) -> None:
        match event:
            case ToolCalls():
                self._flush_user()
                self._flush_model()
                self._append(Content(role="model", parts=[Part(function_call=call) for call in event.calls]))
            case InputTranscript():
                if event.text:
                    self._user_text = self._bounded(self._user_text + event.text)
                if event.finished:
                    self._flush_user()
            case OutputTranscript() | ReplyText() if event.text:
                self._flush_user()
                self._model_text = self._bounded(self._model_text + event.text)
            case ReplyParts():
                # Thoughts (3.x models with thinking on) are the model's working, not what it said.
                text = "".join(part.text or "" for part in event.parts if not part.thought)
                if text:
                    self._flush_user()
                    self._model_text = self._bounded(self._model_text + text)
            case Interrupted() | TurnComplete():
                self._flush_user()
                self._flush_model()

    def snapshot(self) -> list[Content]:
        """The history as of now, including a turn still in progress."""
        pending: list[Content] = []
        if self._user_text.strip():
            pending.append(Content(role="user", parts=[Part(text=self._user_text.strip())]))
        if self._model_text.strip():
            pending.append(Content(role="model", parts=[Part(text=self._model_text.strip())]))
        kept = ConversationLog(max_turns=self.max_turns, max_bytes=self.max_bytes)
        kept._turns, kept.bytes = self._turns.copy(), self.bytes
        for turn in pending:
            kept._append(turn)
        return kept.turns

    # -- internals ---------------------------------------------------------

    def _flush_user(self) -> None:
        if self._user_text.strip():
            self._append(Content(role="user", parts=[Part(text=self._user_text.strip())]))
        self._user_text = ""

    def _flush_model(self) -> None:
        if self._model_text.strip():
            self._append(Content(role="model", parts=[Part(text=self._model_text.strip())]))
        self._model_text = ""

    def _bounded(self, text: str) -> str:
        """Text being joined, cut to its newest half of ``max_bytes``, so it fits in the history as a turn."""
        keep = self.max_bytes // 2
        return text[-keep:] if len(text) > keep else text

    def _append(self, turn: Content) -> None:
        weight = approx_bytes(turn)
        self._turns.append((turn, weight))
        self.bytes += weight
        if len(self._turns) <= self.max_turns and self.bytes <= self.max_bytes:
            return
        while self._turns and (len(self._turns) > self.max_turns or self.bytes > self.max_bytes):
            self._drop_oldest()
        while self._turns and not _starts_a_turn(self._turns[0][0]):
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        _, weight = self._turns.popleft()
        self.bytes -= weight
        self.dropped_turns += 1


def _starts_a_turn(turn: Content) -> bool:
    """A user turn that says something (not a tool result answering a call that was dropped)."""
    return turn.role == "user" and not any(part.function_response is not None for part in turn.parts or [])
