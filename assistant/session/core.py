"""The session's rules without I/O: events in, effects out.

``SessionCore`` holds one conversation's state and decides what happens to
every event; it never awaits, never reads a socket and never touches the
store. Its methods take what happened (a client event, a backend event, a
tool that finished, a save that landed, a drain) and return the effects the
driver must perform, in order: send to the client, send to the backend,
start or cancel a server tool, save or delete a resumption handle, flush
queued reply audio, close (``effects``). Tests drive it directly, without an event loop,
as the ``websockets`` library tests its ``protocol.py``; ``Session`` is the
asyncio driver around it.

The rules it keeps: tool calls are split between the client (functions it
declared) and the server's tools, unknown tools are answered with an error,
every call gets an id; cancellations reach whoever runs the call; a barge-in
flushes queued reply audio; each completed turn gets a resumption handle when
the client asked for resumption, except while a call is out (then
``resumable: false``, and a handle follows the last answer); a drain says
goAway, lets the turn in flight settle, then stops input and saves.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, Literal

from assistant.logs import SessionLogger
from assistant.protocol import (
    INPUT_AUDIO_RATE,
    ActivityEnd,
    AudioChunk,
    AudioStreamEnd,
    ClientEvent,
    ClientMessage,
    ClientTurns,
    CloseCode,
    Content,
    ContextChange,
    FunctionCall,
    FunctionResponse,
    GoingAway,
    InputTranscript,
    Interrupted,
    ProtocolError,
    ReplyAudio,
    ReplyParts,
    ReplyText,
    ResumptionUpdate,
    ServerEvent,
    Setup,
    SetupDone,
    TextInput,
    Tool,
    ToolActivity,
    ToolCalls,
    ToolCancellation,
    ToolResponses,
    TurnComplete,
    VideoFrame,
    client_events,
)
from assistant.protocol.models import ServerToolActivity, duration
from assistant.session.backend import SessionRequest
from assistant.session.effects import (
    CancelServerTool,
    Close,
    DeleteHandle,
    Effect,
    FlushReplyAudio,
    SaveResumption,
    SendToBackend,
    SendToClient,
    StartServerTool,
)
from assistant.session.history import ConversationLog
from assistant.session.limits import ImageTooLarge, check_image_pixels
from assistant.session.profiles import SessionProfile
from assistant.session.resumption import SavedSession, new_handle
from assistant.session.tools import ServerTools
from assistant.session.turns import SessionStats, TurnClock
from audio.resample import StreamResampler

DRAIN_SAVE_MARGIN_S = 1.0  # of a drain's time left, kept for saving the conversation and closing


def merge_server_tools(setup: Setup, tools: ServerTools, offers: Callable[[str], bool] = lambda name: True) -> Setup:
    """The setup a backend sees: the client's declarations plus the server's it ``offers``.

    A server tool the client also declared is left out: the client's own
    declaration wins, and the model never sees one name twice.
    """
    client_names = {declaration.name for declaration in setup.function_declarations()}
    extra = [d for d in tools.declarations() if d.name not in client_names and offers(d.name)]
    if not extra:
        return setup
    return setup.model_copy(update={"tools": [*(setup.tools or []), Tool(function_declarations=extra)]})


class SessionCore:
    """One conversation's state and rules; every method returns the effects to perform, in order."""

    def __init__(
        self,
        session_id: str,
        *,
        backend_name: str,
        tools: ServerTools,
        log: SessionLogger,
        clock: Callable[[], float],
        history_bytes: int,
        max_image_pixels: int,
        observe_tools: bool = False,
    ) -> None:
        self.id = session_id
        self.conversation_id = session_id  # a resumed session takes over its conversation's id
        self.backend_name = backend_name
        self.tools = tools
        self.log = log
        self.history_bytes = history_bytes
        self.max_image_pixels = max_image_pixels
        self.observe_tools = observe_tools
        self.stats = SessionStats()
        self.conversation = ConversationLog(max_bytes=history_bytes)
        self.client_setup: Setup | None = None
        self.profile: SessionProfile | None = None
        self.latest_frame: VideoFrame | None = None
        self.handle: str | None = None  # the newest handle the client holds
        self.input_closed = False  # a drain saved the conversation: later input could not be kept
        self.client_calls: dict[str, str] = {}  # id -> name of calls the client runs
        self.server_calls: dict[str, str] = {}  # id -> name of calls the server's tools run
        self.turn_clock = TurnClock(clock)
        self._client_tool_names: set[str] = set()
        self._resampler: StreamResampler | None = None  # one per session: the client's latest input rate
        self._told_unresumable = False  # the newest update said resumable: false
        self._settle_by: float | None = None  # when a drain stops waiting for the turn in flight

    # -- handshake -----------------------------------------------------------

    def open(self, setup: Setup, saved: SavedSession | None, profile: SessionProfile | None) -> SessionRequest:
        """Take the client's setup (over a saved conversation when it resumes); what the backend opens with."""
        history: list[Content] = []
        backend_state = None
        self.profile = profile
        if saved is not None:
            fields = {**saved.setup, **setup.model_dump(mode="json", exclude_unset=True)}
            setup = Setup.model_validate(fields)
            history = [Content.model_validate(turn) for turn in saved.history]
            backend_state = saved.backend_state if saved.backend == self.backend_name else None
            self.stats.turns = saved.turns
            self.client_calls = dict(saved.pending_calls)
            self.handle = setup.session_resumption.handle if setup.session_resumption else None
            self.conversation_id = saved.conversation or self.conversation_id
        self._set_client_setup(setup)
        self.conversation = ConversationLog(history, max_bytes=self.history_bytes)
        return SessionRequest(
            session_id=self.id,
            setup=merge_server_tools(self._backend_view(setup), self.tools, self.offers_tool),
            history=history,
            backend_state=backend_state,
            history_bytes=self.history_bytes,
        )

    def client_tool_count(self) -> int:
        return len(self._client_tool_names)

    def offers_tool(self, name: str) -> bool:
        """A server tool this session may use (the profile may narrow the set)."""
        return self.tools.handles(name) and (self.profile is None or self.profile.offers_tool(name))

    def _backend_view(self, setup: Setup) -> Setup:
        """The client's setup as the profile adjusts it for the backend."""
        return self.profile.apply(setup) if self.profile is not None else setup

    def _set_client_setup(self, setup: Setup) -> None:
        self.client_setup = setup
        self._client_tool_names = {d.name for d in setup.function_declarations()}

    # -- client -> backend ---------------------------------------------------

    def frame_received(self) -> bool:
        """Count a client frame; False once a drain saved the conversation (the client resends after it)."""
        self.stats.messages_in += 1
        return not self.input_closed

    def client_message(self, message: AudioChunk | ClientMessage) -> list[Effect]:
        """One decoded client frame after the handshake."""
        if isinstance(message, AudioChunk):
            events: list[ClientEvent] = [message]  # a microphone chunk, still base64: nothing to validate
        elif message.setup is not None:
            return [Close(CloseCode.INVALID_ARGUMENT, "setup was already sent; send it once, as the first message")]
        else:
            events = client_events(message)
        effects: list[Effect] = []
        for event in events:
            try:
                accepted = self._accept_client_event(event)
            except ProtocolError as exc:
                return [*effects, Close(exc.code, exc.reason)]
            if accepted is None:
                continue
            effects.append(SendToBackend(accepted, droppable=isinstance(accepted, (AudioChunk, VideoFrame))))
            if isinstance(accepted, ToolResponses):
                effects += self._after_answers()
        return effects

    def _accept_client_event(self, event: ClientEvent) -> ClientEvent | None:
        """Normalise one event and apply the session's bookkeeping; None drops it."""
        if isinstance(event, AudioChunk):
            self.stats.audio_in_s += event.duration_s
            return self._to_input_rate(event)
        self._check_images(event)
        if isinstance(event, VideoFrame):
            self.latest_frame = event
        if isinstance(event, ToolResponses):
            known = self._known_client_responses(event)
            if known is None:
                return None
            event = known
        if isinstance(event, ContextChange):
            event = self._apply_context_change(event)
        if isinstance(event, (ActivityEnd, AudioStreamEnd, TextInput)) or (
            isinstance(event, ClientTurns) and event.turn_complete
        ):
            self.turn_clock.user_finished()
        self.conversation.client_event(event)
        return event

    def _to_input_rate(self, chunk: AudioChunk) -> AudioChunk:
        """Resample to 16 kHz with one resampler, replaced when the client's rate changes.

        A client alternating rates costs a new resampler per change, never
        one per distinct rate kept for the life of the session.
        """
        if chunk.sample_rate == INPUT_AUDIO_RATE:
            return chunk
        if self._resampler is None or self._resampler.in_rate != chunk.sample_rate:
            self._resampler = StreamResampler(chunk.sample_rate, INPUT_AUDIO_RATE)
        return AudioChunk(pcm=self._resampler.process(chunk.pcm), sample_rate=INPUT_AUDIO_RATE)

    def _check_images(self, event: ClientEvent) -> None:
        """Refuse (1009) a client image whose header claims more pixels than the server decodes."""
        if isinstance(event, VideoFrame):
            images = [("realtimeInput.video", event.image)]
        elif isinstance(event, ClientTurns):
            images = [
                (f"clientContent.turns[{turn}].parts[{index}].inlineData", part.inline_data.data)
                for turn, content in enumerate(event.turns)
                for index, part in enumerate(content.parts or [])
                if part.inline_data is not None and part.inline_data.mime_type.startswith("image/")
            ]
        else:
            return
        for where, data in images:
            try:
                check_image_pixels(data, self.max_image_pixels)
            except ImageTooLarge as exc:
                raise ProtocolError(f"{where}: {exc}; send smaller frames", CloseCode.MESSAGE_TOO_BIG) from None

    def _known_client_responses(self, event: ToolResponses) -> ToolResponses | None:
        known = []
        for response in event.responses:
            if response.id is not None and self.client_calls.pop(response.id, None) is not None:
                known.append(response)
            else:
                self.log.warning("ignoring toolResponse for call %s: no such call is pending", response.id)
        return ToolResponses(known) if known else None

    def _apply_context_change(self, event: ContextChange) -> ContextChange:
        """Track the client's new setup; new tools reach the backend with the server's appended."""
        assert self.client_setup is not None
        changed = {name: getattr(event.update, name) for name in event.update.model_fields_set}
        self._set_client_setup(self.client_setup.model_copy(update=changed))
        backend_setup = merge_server_tools(self._backend_view(self.client_setup), self.tools, self.offers_tool)
        update = {name: getattr(backend_setup, name) for name in event.update.model_fields_set}
        return ContextChange(event.update.model_copy(update=update))

    # -- backend -> client ---------------------------------------------------

    def backend_event(self, event: ServerEvent) -> list[Effect]:
        """One event from the backend."""
        effects: list[Effect] = []
        match event:
            case SetupDone() | ResumptionUpdate():
                return []  # the session owns the handshake and the handles; a backend's own are internal
            case ToolCalls():
                event = self._with_call_ids(event)
                self.conversation.server_event(event)
                return self._route_tool_calls(event.calls)
            case ToolCancellation():
                return self._cancel_calls(event.ids)
            case Interrupted():
                effects.append(FlushReplyAudio())
                self.turn_clock.interrupted = True
            case ReplyAudio():
                seconds = event.duration_s
                self.stats.audio_out_s += seconds
                self.turn_clock.reply(seconds)
            case ReplyText() | ReplyParts():
                self.turn_clock.reply()
            case InputTranscript() if event.finished:
                self.turn_clock.user_finished()
        self.conversation.server_event(event)
        effects.append(SendToClient(event, droppable=isinstance(event, ReplyAudio)))
        if isinstance(event, TurnComplete):
            effects += self._complete_turn()
        return effects

    @staticmethod
    def _with_call_ids(event: ToolCalls) -> ToolCalls:
        """Give every call an id, so its response and cancellation can be matched."""
        return ToolCalls(
            [call if call.id else call.model_copy(update={"id": f"call-{secrets.token_hex(6)}"})
             for call in event.calls]
        )

    def _route_tool_calls(self, calls: list[FunctionCall]) -> list[Effect]:
        effects: list[Effect] = []
        for_client: list[FunctionCall] = []
        unknown: list[FunctionResponse] = []
        for call in calls:
            assert call.id is not None
            self.turn_clock.tool_calls += 1
            self.turn_clock.reply()
            if call.name in self._client_tool_names:
                self.client_calls[call.id] = call.name
                for_client.append(call)
            elif self.offers_tool(call.name):
                self.server_calls[call.id] = call.name
                effects += self._tool_activity(call.id, call.name, "running", args=call.args)
                effects.append(StartServerTool(call))
            else:
                self.log.warning("model called unknown tool %s", call.name)
                unknown.append(
                    FunctionResponse(
                        id=call.id, name=call.name, response={"error": f"there is no tool named {call.name}"}
                    )
                )
        if for_client:
            effects.append(SendToClient(ToolCalls(for_client)))
        if unknown:
            self.conversation.tool_results(unknown)
            effects.append(SendToBackend(ToolResponses(unknown)))
        return effects

    def _cancel_calls(self, ids: list[str]) -> list[Effect]:
        effects: list[Effect] = []
        for call_id in ids:
            name = self.server_calls.pop(call_id, None)
            if name is not None:
                effects.append(CancelServerTool(call_id))
                effects += self._tool_activity(call_id, name, "cancelled")
        for_client = [call_id for call_id in ids if self.client_calls.pop(call_id, None) is not None]
        if for_client:
            effects.append(SendToClient(ToolCancellation(for_client)))
        if ids:
            self.log.info("cancelled tool calls %s", ", ".join(ids))
        return effects

    # -- server tools --------------------------------------------------------

    def tool_finished(self, call: FunctionCall, response: FunctionResponse) -> list[Effect]:
        """A server tool answered ``call``; its answer goes to the backend under the call's id and name."""
        assert call.id is not None
        if self.server_calls.pop(call.id, None) is None:
            return []  # cancelled meanwhile: the model no longer waits for it
        effects = self.tool_result(response.model_copy(update={"id": call.id, "name": call.name}))
        return effects + self._after_answers()

    def tool_failed(self, call: FunctionCall) -> list[Effect]:
        """A server tool crashed (the driver logged why); the model hears that it failed, not why."""
        error = FunctionResponse(id=call.id, name=call.name, response={"error": f"{call.name} failed"})
        return self.tool_finished(call, error)

    def tool_result(self, response: FunctionResponse) -> list[Effect]:
        """A tool's answer for the model: a server tool's, or a late one that came after its call returned."""
        self.conversation.tool_results([response])
        failed = response.response is not None and "error" in response.response
        activity = self._tool_activity(
            response.id or "", response.name or "", "failed" if failed else "done", response=response.response
        )
        return [SendToBackend(ToolResponses([response])), *activity]

    def _tool_activity(
        self,
        call_id: str,
        name: str,
        state: Literal["running", "done", "failed", "cancelled"],
        args: dict[str, Any] | None = None,
        response: dict[str, Any] | None = None,
    ) -> list[Effect]:
        """Tell a client that asked (``?events=tools``) what a server tool is doing."""
        if not self.observe_tools:
            return []
        activity = ServerToolActivity(id=call_id, name=name, state=state, args=args, response=response)
        return [SendToClient(ToolActivity(activity))]

    # -- turns and resumption ------------------------------------------------

    def turn_in_flight(self) -> bool:
        return self.turn_clock.in_flight() or bool(self.client_calls) or bool(self.server_calls)

    def _complete_turn(self) -> list[Effect]:
        self.stats.turns += 1
        self.turn_clock.observe()
        self.log.info(self.turn_clock.summary(self.stats.turns))
        if not self.resumption_requested() or self.input_closed:
            return []
        if self.client_calls or self.server_calls:
            # As Gemini does: no handle while a call is out; one follows its answer (``_after_answers``).
            self._told_unresumable = True
            return [SendToClient(ResumptionUpdate(resumable=False))]
        return [self._issue_handle()]

    def _after_answers(self) -> list[Effect]:
        """The last call out was answered after the client heard ``resumable: false``: a handle again."""
        if (
            self._told_unresumable
            and self.resumption_requested()
            and not self.input_closed
            and not self.turn_in_flight()
        ):
            return [self._issue_handle()]
        return []

    def resumption_requested(self) -> bool:
        return self.client_setup is not None and self.client_setup.session_resumption is not None

    def _issue_handle(self, *, retire_previous: bool = True) -> SaveResumption:
        """Save the conversation so far under a fresh handle (the client hears of it once it is saved).

        Client calls still waiting for an answer are saved with it, so the
        session that resumes accepts their responses.
        """
        assert self.client_setup is not None
        self._told_unresumable = False
        saved = SavedSession(
            setup=self.client_setup.model_dump(mode="json", exclude_none=True),
            history=[turn.model_dump(mode="json", exclude_none=True) for turn in self.conversation.snapshot()],
            backend=self.backend_name,
            turns=self.stats.turns,
            profile=self.profile.name if self.profile is not None else None,
            conversation=self.conversation_id,
            pending_calls=dict(self.client_calls),
        )
        return SaveResumption(new_handle(), saved, retire_previous)

    def save_done(self, save: SaveResumption) -> list[Effect]:
        """``save`` is in the store: the client gets its handle, and the one it supersedes is retired.

        A save that lands after a later turn told the client ``resumable: false``
        (a call went out meanwhile) is not announced: the client's last word
        stays "not resumable now", and a fresh handle follows the answers.
        """
        previous, self.handle = self.handle, save.handle
        effects: list[Effect] = []
        if not self._told_unresumable:
            effects.append(SendToClient(ResumptionUpdate(new_handle=save.handle, resumable=True)))
        if previous is not None and save.retire_previous:
            effects.append(DeleteHandle(previous))
        return effects

    def save_failed(self, save: SaveResumption) -> list[Effect]:
        """The store is unreachable (it logged the outage once); the client keeps the handle it has."""
        return [SendToClient(ResumptionUpdate(resumable=False))]

    # -- graceful drain ------------------------------------------------------

    def drain(self, now: float, time_left_s: float) -> list[Effect]:
        """The server stops in ``time_left_s``: goAway now; the turn in flight may settle until shortly before."""
        time_left_s = max(0.0, time_left_s)
        self._settle_by = now + time_left_s - min(DRAIN_SAVE_MARGIN_S, time_left_s / 4)
        self.log.info("server stopping: goAway, %.1f s left", time_left_s)
        return [SendToClient(GoingAway(duration(time_left_s)))]

    def settle_by(self) -> float:
        """When a drain stops waiting for the turn in flight (after ``drain``)."""
        assert self._settle_by is not None, "drain() first"
        return self._settle_by

    def drain_settled(self, now: float) -> bool:
        """The drain may stop input now: the turn in flight is over, or its time ran out."""
        return not self.turn_in_flight() or now >= self.settle_by()

    def close_input(self) -> list[Effect]:
        """Stop taking input and save everything said so far for the restart."""
        self.input_closed = True
        if self.turn_in_flight():
            self.log.info(
                "saving mid-turn for the restart (%d client calls unanswered, %d server calls cut short)",
                len(self.client_calls),
                len(self.server_calls),
            )
        if not self.resumption_requested():
            return []
        # The previous handle stays valid: a client that moved on the goAway (as the page and
        # Gemini's clients do) may be resuming with it on another process right now.
        return [self._issue_handle(retire_previous=False)]

