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
every call gets an id; read-only server tools may run before the reply
that calls them is committed (``EarlyToolCalls``), unseen until it is;
cancellations reach whoever runs the call; a barge-in
flushes queued reply audio; each completed turn gets a resumption handle when
the client asked for resumption, except while a call is out (then
``resumable: false``, and a handle follows the last answer); a drain says
goAway, lets the turn in flight settle, then stops input and saves.
"""

from __future__ import annotations

from collections.abc import Callable

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
    EarlyToolCalls,
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
    ToolCalls,
    ToolCancellation,
    ToolResponses,
    TurnComplete,
    VideoFrame,
    client_events,
)
from assistant.protocol.models import duration
from assistant.session.backend import SessionRequest
from assistant.session.calls import CallBook, with_call_ids
from assistant.session.effects import (
    Close,
    DeleteHandle,
    Effect,
    FlushReplyAudio,
    SaveResumption,
    SendToBackend,
    SendToClient,
)
from assistant.session.history import ConversationLog
from assistant.session.limits import check_event_images
from assistant.session.profiles import SessionProfile
from assistant.session.resumption import SavedSession, new_handle
from assistant.session.tools import ServerTools, merge_server_tools
from assistant.session.turns import SessionStats, TurnClock
from audio.resample import StreamResampler

DRAIN_SAVE_MARGIN_S = 1.0  # of a drain's time left, kept for saving the conversation and closing


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
        self.calls = CallBook(tools, self.offers_tool, log, observe_tools)
        self.turn_clock = TurnClock(clock)
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
            self.calls.client_calls = dict(saved.pending_calls)
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
        return len(self.calls.client_tool_names)

    def offers_tool(self, name: str) -> bool:
        """A server tool this session may use (the profile may narrow the set)."""
        return self.tools.handles(name) and (self.profile is None or self.profile.offers_tool(name))

    def _backend_view(self, setup: Setup) -> Setup:
        """The client's setup as the profile adjusts it for the backend."""
        return self.profile.apply(setup) if self.profile is not None else setup

    def _set_client_setup(self, setup: Setup) -> None:
        self.client_setup = setup
        self.calls.client_tool_names = {d.name for d in setup.function_declarations()}

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

    def client_audio(self, chunk: AudioChunk) -> AudioChunk:
        """A microphone chunk: counted, and at the backend's input rate; what ``client_message`` does with one.

        For the driver's fast path, which forwards the chunk itself (a chunk
        has no other effect than ``SendToBackend``, droppable).
        """
        self.stats.audio_in_s += chunk.duration_s
        return self._to_input_rate(chunk)

    def _accept_client_event(self, event: ClientEvent) -> ClientEvent | None:
        """Normalise one event and apply the session's bookkeeping; None drops it."""
        if isinstance(event, AudioChunk):
            return self.client_audio(event)
        check_event_images(event, self.max_image_pixels)
        if isinstance(event, VideoFrame):
            self.latest_frame = event
        if isinstance(event, ToolResponses):
            known = self.calls.client_answers(event)
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
                event = with_call_ids(event)
                self.conversation.server_event(event)
                self.turn_clock.tool_calls += len(event.calls)
                if event.calls:
                    self.turn_clock.reply()
                return self.calls.route(event.calls, self.conversation)
            case EarlyToolCalls():
                return self.calls.start_early(event.calls)
            case ToolCancellation():
                return self.calls.cancel(event.ids)
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

    # -- server tools --------------------------------------------------------

    def tool_finished(self, call: FunctionCall, response: FunctionResponse) -> list[Effect]:
        """A server tool answered ``call``; its answer goes to the backend under the call's id and name."""
        early = call.id in self.calls.early_calls
        effects = self.calls.finished(call, response, self.conversation)
        if effects is None or early:
            return effects or []
        return effects + self._after_answers()

    def tool_failed(self, call: FunctionCall) -> list[Effect]:
        """A server tool crashed (the driver logged why); the model hears that it failed, not why."""
        error = FunctionResponse(id=call.id, name=call.name, response={"error": f"{call.name} failed"})
        return self.tool_finished(call, error)

    def tool_result(self, response: FunctionResponse) -> list[Effect]:
        """A late answer, after its call returned (a timer that fired): to the backend and the history."""
        return self.calls.answer(response, self.conversation)

    # -- turns and resumption ------------------------------------------------

    def turn_in_flight(self) -> bool:
        return self.turn_clock.in_flight() or self.calls.out()

    def _complete_turn(self) -> list[Effect]:
        self.stats.turns += 1
        self.turn_clock.observe()
        self.log.info(self.turn_clock.summary(self.stats.turns))
        if not self.resumption_requested() or self.input_closed:
            return []
        if self.calls.out():
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
            pending_calls=dict(self.calls.client_calls),
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
                len(self.calls.client_calls),
                len(self.calls.server_calls),
            )
        if not self.resumption_requested():
            return []
        # The previous handle stays valid: a client that moved on the goAway (as the page and
        # Gemini's clients do) may be resuming with it on another process right now.
        return [self._issue_handle(retire_previous=False)]

