"""The conversation as a list of turns, recorded from what crosses the session.

Every backend reports what the user said (input transcription, typed text,
client turns) and what the model said (output transcription or text parts,
tool calls) in the same protocol messages, so one recorder here gives both
backends the same history for resumption, whatever they keep internally.
Transcription arrives in fragments that clients join; so does this.
"""

from __future__ import annotations

from assistant.protocol import (
    ClientEvent,
    ClientTurns,
    Content,
    FunctionResponse,
    Part,
    ServerMessage,
    TextInput,
    ToolResponses,
)

DEFAULT_MAX_TURNS = 200


class ConversationLog:
    """Turns in order, newest last, at most ``max_turns`` of them."""

    def __init__(self, history: list[Content] | None = None, max_turns: int = DEFAULT_MAX_TURNS) -> None:
        self.turns: list[Content] = list(history or [])
        self.max_turns = max_turns
        self._user_text = ""
        self._model_text = ""

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

    def server_message(self, message: ServerMessage) -> None:
        content = message.server_content
        if message.tool_call is not None:
            self._flush_user()
            self._flush_model()
            self._append(Content(role="model", parts=[Part(function_call=c) for c in message.tool_call.function_calls]))
        if content is None:
            return
        if content.input_transcription is not None and content.input_transcription.text:
            self._user_text += content.input_transcription.text
        if content.input_transcription is not None and content.input_transcription.finished:
            self._flush_user()
        if content.output_transcription is not None and content.output_transcription.text:
            self._flush_user()
            self._model_text += content.output_transcription.text
        if content.model_turn is not None:
            # Thoughts (3.x models with thinking on) are the model's working, not what it said.
            text = "".join(part.text or "" for part in content.model_turn.parts if not part.thought)
            if text:
                self._flush_user()
                self._model_text += text
        if content.interrupted or content.turn_complete:
            self._flush_user()
            self._flush_model()

    def snapshot(self) -> list[Content]:
        """The history as of now, including a turn still in progress."""
        pending: list[Content] = []
        if self._user_text.strip():
            pending.append(Content(role="user", parts=[Part(text=self._user_text.strip())]))
        if self._model_text.strip():
            pending.append(Content(role="model", parts=[Part(text=self._model_text.strip())]))
        return (self.turns + pending)[-self.max_turns :]

    # -- internals ---------------------------------------------------------

    def _flush_user(self) -> None:
        if self._user_text.strip():
            self._append(Content(role="user", parts=[Part(text=self._user_text.strip())]))
        self._user_text = ""

    def _flush_model(self) -> None:
        if self._model_text.strip():
            self._append(Content(role="model", parts=[Part(text=self._model_text.strip())]))
        self._model_text = ""

    def _append(self, turn: Content) -> None:
        self.turns.append(turn)
        if len(self.turns) > self.max_turns:
            del self.turns[: len(self.turns) - self.max_turns]
