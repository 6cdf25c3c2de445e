"""One Live conversation, from the setup handshake to the close frame.

A ``Session`` joins a transport (a websocket, or an in-process pipe for the
desktop app) to a ``BackendSession``. After the handshake four tasks run at
once, joined by two bounded ``FlowQueue``s:

    client reader -> inbound queue -> backend writer
    backend reader -> outbound queue -> client writer

The reader and writer of each direction are separate so a slow backend never
stalls the client's socket and a stalled client never stalls the backend
beyond the queue's bound; audio gives way first (see ``queues``).

The backend reader is where the session's own rules live: tool calls are
split between the client (functions it declared) and the server's tools;
cancellations reach whoever runs the call; a barge-in flushes queued reply
audio; each completed turn gets a resumption handle when the client asked for
resumption. Whatever ends the session ends it with a close code and reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from assistant import metrics
from assistant.errors import AssistantError
from assistant.logs import SessionLogger
from assistant.protocol import (
    INPUT_AUDIO_RATE,
    ActivityEnd,
    AudioChunk,
    AudioStreamEnd,
    ClientEvent,
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
    decode_client_frame,
    encode_event,
    fit_close_reason,
    parse_client_message,
)
from assistant.protocol.errors import new_error_id, with_error_id
from assistant.protocol.models import ServerToolActivity, duration
from assistant.session.backend import Backend, BackendError, BackendSession, SessionRequest
from assistant.session.history import ConversationLog
from assistant.session.late import LateResultRouter, LateResults
from assistant.session.limits import (
    DEFAULT_HISTORY_BYTES,
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_QUEUE_BYTES,
    ImageTooLarge,
    check_image_pixels,
    event_bytes,
)
from assistant.session.profiles import ProfileResolver, SessionProfile, UnknownProfile
from assistant.session.queues import FlowQueue, QueueClosed
from assistant.session.resumption import (
    DEFAULT_HANDLE_TTL_S,
    ResumptionStore,
    SavedSession,
    StoreUnavailable,
    new_handle,
)
from assistant.session.tools import NoServerTools, ServerTools, ToolContext
from audio.resample import StreamResampler

logger = logging.getLogger("assistant.session")

DRAIN_SAVE_MARGIN_S = 1.0  # of a drain's time left, kept for saving the conversation and closing
DRAINED_REASON = "the server is restarting; reconnect with your newest resumption handle"


class TransportClosed(AssistantError):
    """The peer went away; there is nobody left to send a close frame to."""


class Transport(Protocol):
    """A message pipe to one client: a websocket, or an in-process pair."""

    peer: str

    async def recv(self) -> str | bytes:
        """The next client frame; ``TransportClosed`` when the client is gone."""
        ...

    async def send(self, data: bytes) -> None:
        """Send one server frame; ``TransportClosed`` when the client is gone."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close with a code and a reason the client can act on."""
        ...


@dataclass(slots=True)
class SessionSettings:
    """Bounds and timeouts of one session; the defaults suit 20 ms audio chunks."""

    inbound_queue_size: int = 250  # 5 s of 20 ms chunks before audio is shed
    outbound_queue_size: int = 250
    inbound_queue_bytes: int = DEFAULT_QUEUE_BYTES  # 5 s of audio plus a few frames, whichever bound comes first
    outbound_queue_bytes: int = DEFAULT_QUEUE_BYTES
    history_bytes: int = DEFAULT_HISTORY_BYTES  # text and images kept for resumption, oldest turns dropped first
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS  # larger client images close the session with 1009
    setup_timeout_s: float = 30.0
    handle_ttl_s: float = DEFAULT_HANDLE_TTL_S
    drain_timeout_s: float = 5.0


@dataclass(slots=True)
class SessionStats:
    """Counters logged when the session ends (and read by tests and benchmarks)."""

    messages_in: int = 0
    messages_out: int = 0
    audio_in_s: float = 0.0
    audio_out_s: float = 0.0
    turns: int = 0
    flushed_on_interrupt: int = 0


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


def _detail(detail: str | None) -> str:
    """What a library said, for the log line only (the client got an error id instead)."""
    return f" ({detail})" if detail else ""


def _is_droppable_input(event: ClientEvent) -> bool:
    return isinstance(event, (AudioChunk, VideoFrame))


class TurnClock:
    """Times each turn: end of user input to first reply, for the log."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.user_done_at: float | None = None
        self.first_reply_at: float | None = None
        self.reply_audio_s = 0.0
        self.tool_calls = 0
        self.interrupted = False

    def user_finished(self) -> None:
        self.user_done_at = self._clock()
        self.first_reply_at = None

    def reply(self, audio_s: float = 0.0) -> None:
        if self.first_reply_at is None:
            self.first_reply_at = self._clock()
        self.reply_audio_s += audio_s

    def first_reply_s(self) -> float | None:
        """Seconds from the end of the user's input to the first reply, when both happened this turn."""
        if self.user_done_at is None or self.first_reply_at is None:
            return None
        return self.first_reply_at - self.user_done_at

    def observe(self) -> None:
        """Count the turn just finished in the process's metrics (before ``summary`` resets the clock)."""
        metrics.TURNS.labels("interrupted" if self.interrupted else "complete").inc()
        latency_s = self.first_reply_s()
        if latency_s is not None:
            metrics.STAGE_LATENCY.labels("first_reply").observe(latency_s)

    def summary(self, turn: int) -> str:
        """One log line for the turn just finished; resets for the next."""
        latency_s = self.first_reply_s()
        latency = "n/a" if latency_s is None else f"{latency_s * 1000:.0f} ms"
        text = (
            f"turn {turn} {'interrupted' if self.interrupted else 'complete'}: "
            f"first reply {latency} after end of input, "
            f"{self.reply_audio_s:.1f} s reply audio, {self.tool_calls} tool calls"
        )
        self.user_done_at = self.first_reply_at = None
        self.reply_audio_s = 0.0
        self.tool_calls = 0
        self.interrupted = False
        return text


class Session:
    """Runs one conversation; ``run`` returns when it is over and the client closed."""

    def __init__(
        self,
        transport: Transport,
        backend: Backend,
        *,
        store: ResumptionStore,
        tools: ServerTools | None = None,
        settings: SessionSettings | None = None,
        session_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        profiles: ProfileResolver | None = None,
        requested_profile: str | None = None,
        observe_tools: bool = False,
        late_results: LateResultRouter | None = None,
    ) -> None:
        self.id = session_id or secrets.token_hex(4)
        self.conversation_id = self.id  # a resumed session takes over its conversation's id
        self.transport = transport
        self.backend = backend
        self.store = store
        self.tools = tools or NoServerTools()
        self.settings = settings or SessionSettings()
        self.stats = SessionStats()
        self.log = SessionLogger(logger, self.id, transport.peer, backend.name)
        self.inbound: FlowQueue[ClientEvent] = FlowQueue(
            self.settings.inbound_queue_size, max_bytes=self.settings.inbound_queue_bytes, size=event_bytes
        )
        self.outbound: FlowQueue[ServerEvent] = FlowQueue(
            self.settings.outbound_queue_size,
            kind=lambda event: "reply audio" if isinstance(event, ReplyAudio) else "message",
            max_bytes=self.settings.outbound_queue_bytes,
            size=event_bytes,
        )
        self.conversation = ConversationLog(max_bytes=self.settings.history_bytes)
        self.client_setup: Setup | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self._backend_session: BackendSession | None = None
        self._client_tool_names: set[str] = set()
        self._client_calls: dict[str, str] = {}
        self._server_calls: dict[str, asyncio.Task[None]] = {}
        self._server_call_names: dict[str, str] = {}  # for activity events about calls being cancelled
        self._resampler: StreamResampler | None = None  # one per session: the client's latest input rate
        self._handle: str | None = None
        self.latest_frame: VideoFrame | None = None
        self._profiles = profiles
        self._requested_profile = requested_profile
        self._observe_tools = observe_tools
        self.profile: SessionProfile | None = None
        self._turn_clock = TurnClock(clock)
        self._late: LateResultRouter = late_results or LateResults()
        self._receive_late = self._deliver_tool_response  # one bound method: LateResults knows it by identity
        self._drain_requested = asyncio.Event()
        self._drain_time_left_s = 0.0
        self._changed = asyncio.Event()  # a turn moved on: a drain looks again whether it may save
        self._input_closed = False  # a drain saved the conversation: later input could not be kept
        self._told_unresumable = False  # the newest update said resumable: false

    # -- lifecycle -----------------------------------------------------------

    async def run(self) -> None:
        """Handshake, pump both directions, then close with the reason it ended."""
        code: int | None = CloseCode.NORMAL
        reason = "session ended"
        try:
            await self._open()
            code, reason = await self._pump()
        except ProtocolError as exc:
            code, reason = exc.code, exc.reason
            self.log.info("closing on bad input: %s%s", reason, _detail(exc.detail))
        except BackendError as exc:
            code, reason = exc.code, exc.reason
            self.log.warning("closing on backend error %d: %s%s", code, reason, _detail(exc.detail))
        except TransportClosed:
            code = None
            self.log.info("client disconnected")
        except Exception:
            error_id = new_error_id()
            self.log.exception("session failed (error %s)", error_id)
            code, reason = CloseCode.INTERNAL_ERROR, with_error_id(f"internal error in session {self.id}", error_id)
        finally:
            await self._release()
        self.close_code, self.close_reason = code, reason
        if code is not None:
            with contextlib.suppress(TransportClosed):
                await self.transport.close(int(code), fit_close_reason(reason))
        self.log.info(
            "ended (%s): %d turns, %d messages in, %d out, %.1f s audio in, %.1f s out, dropped in %s, out %s",
            code if code is not None else "client gone",
            self.stats.turns,
            self.stats.messages_in,
            self.stats.messages_out,
            self.stats.audio_in_s,
            self.stats.audio_out_s,
            dict(self.inbound.dropped) or 0,
            dict(self.outbound.dropped) or 0,
        )

    async def _open(self) -> None:
        try:
            data = await asyncio.wait_for(self.transport.recv(), self.settings.setup_timeout_s)
        except TimeoutError:
            raise ProtocolError(
                f"no setup message within {self.settings.setup_timeout_s:.0f} s; send setup first",
                CloseCode.POLICY_VIOLATION,
            ) from None
        message = parse_client_message(data)
        if message.setup is None:
            raise ProtocolError(f"{message.kind} before setup; the first message must be setup")
        request = await self._session_request(message.setup)
        self._backend_session = await self.backend.open(request)
        await self.transport.send(encode_event(SetupDone(self.id)))
        for response in await self._late.attach(self.conversation_id, self._receive_late):
            self.log.info("delivering the late result of %s that came while the client was away", response.name)
            await self._deliver_tool_response(response)
        self.log.info(
            "started: model %s, %d client tools, %d server tools%s",
            request.setup.model,
            len(self._client_tool_names),
            len(request.setup.function_declarations()) - len(self._client_tool_names),
            f", resumed after {self.stats.turns} turns" if request.history else "",
        )

    async def _session_request(self, setup: Setup) -> SessionRequest:
        """Resolve a resumption handle, then merge the server's tools into the setup."""
        history: list[Content] = []
        backend_state = None
        profile_name = self._requested_profile
        handle = setup.session_resumption.handle if setup.session_resumption else None
        if handle:
            try:
                saved = await self.store.load(handle)
            except StoreUnavailable:
                raise ProtocolError(
                    "the conversation store is unreachable for now; resume with the same handle in a moment",
                    CloseCode.INTERNAL_ERROR,
                ) from None
            if saved is None:
                raise ProtocolError(
                    "sessionResumption.handle is unknown or expired; "
                    "connect without a handle to start a new conversation"
                )
            fields = {**saved.setup, **setup.model_dump(mode="json", exclude_unset=True)}
            setup = Setup.model_validate(fields)
            history = [Content.model_validate(turn) for turn in saved.history]
            backend_state = saved.backend_state if saved.backend == self.backend.name else None
            self.stats.turns = saved.turns
            self._client_calls = dict(saved.pending_calls)
            self._handle = handle
            self.conversation_id = saved.conversation or self.conversation_id
            profile_name = profile_name or saved.profile
        self.profile = await self._resolve_profile(profile_name)
        self._set_client_setup(setup)
        self.conversation = ConversationLog(history, max_bytes=self.settings.history_bytes)
        return SessionRequest(
            session_id=self.id,
            setup=merge_server_tools(self._backend_view(setup), self.tools, self._offers_tool),
            history=history,
            backend_state=backend_state,
            history_bytes=self.settings.history_bytes,
        )

    async def _resolve_profile(self, name: str | None) -> SessionProfile | None:
        if self._profiles is None:
            if name is not None:
                raise ProtocolError(
                    "this server has no personas; connect without ?persona= or x-assistant-persona",
                    CloseCode.POLICY_VIOLATION,
                )
            return None
        try:
            return await self._profiles(name)
        except UnknownProfile as exc:
            raise ProtocolError(str(exc), CloseCode.POLICY_VIOLATION) from None

    def _backend_view(self, setup: Setup) -> Setup:
        """The client's setup as the profile adjusts it for the backend."""
        return self.profile.apply(setup) if self.profile is not None else setup

    def _offers_tool(self, name: str) -> bool:
        """A server tool this session may use (the profile may narrow the set)."""
        return self.tools.handles(name) and (self.profile is None or self.profile.offers_tool(name))

    def _set_client_setup(self, setup: Setup) -> None:
        self.client_setup = setup
        self._client_tool_names = {d.name for d in setup.function_declarations()}

    async def _pump(self) -> tuple[int, str]:
        tasks = [
            asyncio.create_task(self._read_client(), name=f"{self.id}-client-reader"),
            asyncio.create_task(self._write_backend(), name=f"{self.id}-backend-writer"),
            asyncio.create_task(self._read_backend(), name=f"{self.id}-backend-reader"),
        ]
        writer = asyncio.create_task(self._write_client(), name=f"{self.id}-client-writer")
        tasks.append(asyncio.create_task(self._drain_when_asked(), name=f"{self.id}-drain"))
        try:
            done, _ = await asyncio.wait([*tasks, writer], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            # Only the backend reader (the backend closed the session) and a drain end without an
            # error. Deliver what was said before closing.
            self.outbound.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(writer), self.settings.drain_timeout_s)
            if self._input_closed:
                return CloseCode.GOING_AWAY, DRAINED_REASON
            return CloseCode.NORMAL, "the backend ended the session"
        finally:
            for task in [*tasks, writer]:
                task.cancel()
            await asyncio.gather(*tasks, writer, return_exceptions=True)

    async def _release(self) -> None:
        resumable = self._handle is not None  # the client holds a handle it may come back with
        await self._late.detach(
            self.conversation_id, self._receive_late, self.settings.handle_ttl_s if resumable else None
        )
        self.inbound.close()
        self.outbound.close()
        for task in self._server_calls.values():
            task.cancel()
        await asyncio.gather(*self._server_calls.values(), return_exceptions=True)
        self._server_calls.clear()
        if self._backend_session is not None:
            try:
                await self._backend_session.close()
            except Exception:
                self.log.exception("backend session failed to close")

    # -- graceful drain ------------------------------------------------------

    def drain(self, time_left_s: float) -> None:
        """End this session within ``time_left_s`` seconds, because the server is stopping.

        The client hears ``goAway`` at once. The turn in flight may finish (a
        reply being spoken, a tool call being answered) until shortly before
        the time is up. Then input stops being taken, a client that asked for
        resumption gets a handle for everything said so far (a client call
        still unanswered included, so its answer is accepted after the
        restart), and the connection closes with 1001.
        """
        self._drain_time_left_s = max(0.0, time_left_s)
        self._drain_requested.set()

    def _turn_in_flight(self) -> bool:
        clock = self._turn_clock
        return (
            clock.user_done_at is not None
            or clock.first_reply_at is not None
            or bool(self._client_calls)
            or bool(self._server_calls)
        )

    async def _drain_when_asked(self) -> None:
        await self._drain_requested.wait()
        loop = asyncio.get_running_loop()
        time_left = self._drain_time_left_s
        settle_by = loop.time() + time_left - min(DRAIN_SAVE_MARGIN_S, time_left / 4)
        self.log.info("server stopping: goAway, %.1f s left", time_left)
        await self._send(GoingAway(duration(time_left)))
        while self._turn_in_flight() and loop.time() < settle_by:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), settle_by - loop.time())
        self._input_closed = True
        if self._turn_in_flight():
            self.log.info(
                "saving mid-turn for the restart (%d client calls unanswered, %d server calls cut short)",
                len(self._client_calls),
                len(self._server_calls),
            )
        if self._resumption_requested():
            # The previous handle stays valid: a client that moved on the goAway (as the page and
            # Gemini's clients do) may be resuming with it on another process right now.
            await self._issue_handle(retire_previous=False)

    # -- client -> backend ---------------------------------------------------

    async def _read_client(self) -> None:
        while True:
            data = await self.transport.recv()
            self.stats.messages_in += 1
            if self._input_closed:
                continue  # the conversation was saved for the restart; the client resends after it
            message = decode_client_frame(data)
            if isinstance(message, AudioChunk):
                events: list[ClientEvent] = [message]  # a microphone chunk, still base64: nothing to validate
            elif message.setup is not None:
                raise ProtocolError("setup was already sent; send it once, as the first message")
            else:
                events = client_events(message)
            for event in events:
                accepted = self._accept_client_event(event)
                if accepted is not None:
                    await self.inbound.put(accepted, droppable=_is_droppable_input(accepted))
                if isinstance(accepted, ToolResponses):
                    await self._after_answers()

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
            self._turn_clock.user_finished()
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
                check_image_pixels(data, self.settings.max_image_pixels)
            except ImageTooLarge as exc:
                raise ProtocolError(f"{where}: {exc}; send smaller frames", CloseCode.MESSAGE_TOO_BIG) from None

    def _known_client_responses(self, event: ToolResponses) -> ToolResponses | None:
        known = []
        for response in event.responses:
            if response.id is not None and self._client_calls.pop(response.id, None) is not None:
                known.append(response)
                self._changed.set()
            else:
                self.log.warning("ignoring toolResponse for call %s: no such call is pending", response.id)
        return ToolResponses(known) if known else None

    def _apply_context_change(self, event: ContextChange) -> ContextChange:
        """Track the client's new setup; new tools reach the backend with the server's appended."""
        assert self.client_setup is not None
        changed = {name: getattr(event.update, name) for name in event.update.model_fields_set}
        self._set_client_setup(self.client_setup.model_copy(update=changed))
        backend_setup = merge_server_tools(self._backend_view(self.client_setup), self.tools, self._offers_tool)
        update = {name: getattr(backend_setup, name) for name in event.update.model_fields_set}
        return ContextChange(event.update.model_copy(update=update))

    async def _write_backend(self) -> None:
        assert self._backend_session is not None
        while True:
            try:
                event = await self.inbound.get()
            except QueueClosed:
                return
            await self._backend_session.send(event)

    # -- backend -> client ---------------------------------------------------

    async def _read_backend(self) -> None:
        assert self._backend_session is not None
        async for event in self._backend_session.receive():
            await self._route(event)

    async def _route(self, event: ServerEvent) -> None:
        match event:
            case SetupDone() | ResumptionUpdate():
                return  # the session owns the handshake and the handles; a backend's own are internal
            case ToolCalls():
                event = self._with_call_ids(event)
                self.conversation.server_event(event)
                await self._route_tool_calls(event.calls)
                return
            case ToolCancellation():
                await self._cancel_calls(event.ids)
                return
            case Interrupted():
                self.stats.flushed_on_interrupt += self.outbound.discard(lambda queued: isinstance(queued, ReplyAudio))
                self._turn_clock.interrupted = True
            case ReplyAudio():
                seconds = event.duration_s
                self.stats.audio_out_s += seconds
                self._turn_clock.reply(seconds)
            case ReplyText() | ReplyParts():
                self._turn_clock.reply()
            case InputTranscript() if event.finished:
                self._turn_clock.user_finished()
        self.conversation.server_event(event)
        await self._send(event, droppable=isinstance(event, ReplyAudio))
        if isinstance(event, TurnComplete):
            await self._complete_turn()
        self._changed.set()

    async def _send(self, event: ServerEvent, droppable: bool = False) -> None:
        await self.outbound.put(event, droppable=droppable)

    @staticmethod
    def _with_call_ids(event: ToolCalls) -> ToolCalls:
        """Give every call an id, so its response and cancellation can be matched."""
        return ToolCalls(
            [call if call.id else call.model_copy(update={"id": f"call-{secrets.token_hex(6)}"})
             for call in event.calls]
        )

    async def _route_tool_calls(self, calls: list[FunctionCall]) -> None:
        for_client: list[FunctionCall] = []
        unknown: list[FunctionResponse] = []
        for call in calls:
            assert call.id is not None
            self._turn_clock.tool_calls += 1
            self._turn_clock.reply()
            if call.name in self._client_tool_names:
                self._client_calls[call.id] = call.name
                for_client.append(call)
            elif self._offers_tool(call.name):
                self._server_call_names[call.id] = call.name
                self._server_calls[call.id] = asyncio.create_task(
                    self._run_server_tool(call), name=f"{self.id}-tool-{call.name}"
                )
            else:
                self.log.warning("model called unknown tool %s", call.name)
                unknown.append(
                    FunctionResponse(
                        id=call.id, name=call.name, response={"error": f"there is no tool named {call.name}"}
                    )
                )
        if for_client:
            await self._send(ToolCalls(for_client))
        if unknown:
            self.conversation.tool_results(unknown)
            await self.inbound.put(ToolResponses(unknown))

    async def _run_server_tool(self, call: FunctionCall) -> None:
        assert call.id is not None
        started = time.perf_counter()
        await self._tool_activity(call.id, call.name, "running", args=call.args)
        context = ToolContext(
            session_id=self.id,
            send_response=self._late_result,
            latest_frame=lambda: self.latest_frame,
            profile=self.profile,
        )
        try:
            response = await self.tools.call(call, context)
        except Exception:
            self.log.exception("server tool %s crashed", call.name)
            response = FunctionResponse(id=call.id, name=call.name, response={"error": f"{call.name} failed"})
        finally:
            self._server_calls.pop(call.id, None)
            self._server_call_names.pop(call.id, None)
            self._changed.set()
        elapsed_s = time.perf_counter() - started
        metrics.STAGE_LATENCY.labels("server_tool").observe(elapsed_s)
        self.log.info("server tool %s answered in %.0f ms", call.name, elapsed_s * 1000)
        await self._deliver_tool_response(response.model_copy(update={"id": call.id, "name": call.name}))
        await self._after_answers()

    async def _late_result(self, response: FunctionResponse) -> None:
        """A result that came after its call returned: to this conversation's session, whichever it is now."""
        await self._late.deliver(self.conversation_id, response)

    async def _deliver_tool_response(self, response: FunctionResponse) -> None:
        self.conversation.tool_results([response])
        await self.inbound.put(ToolResponses([response]))
        failed = response.response is not None and "error" in response.response
        await self._tool_activity(
            response.id or "", response.name or "", "failed" if failed else "done", response=response.response
        )

    async def _tool_activity(
        self,
        call_id: str,
        name: str,
        state: Literal["running", "done", "failed", "cancelled"],
        args: dict[str, Any] | None = None,
        response: dict[str, Any] | None = None,
    ) -> None:
        """Tell a client that asked (``?events=tools``) what a server tool is doing."""
        if self._observe_tools:
            activity = ServerToolActivity(id=call_id, name=name, state=state, args=args, response=response)
            await self._send(ToolActivity(activity))

    async def _cancel_calls(self, ids: list[str]) -> None:
        for call_id in ids:
            task = self._server_calls.pop(call_id, None)
            if task is not None:
                task.cancel()
                await self._tool_activity(call_id, self._server_call_names.pop(call_id, ""), "cancelled")
        for_client = [call_id for call_id in ids if self._client_calls.pop(call_id, None) is not None]
        if for_client:
            await self._send(ToolCancellation(for_client))
        if ids:
            self.log.info("cancelled tool calls %s", ", ".join(ids))

    async def _complete_turn(self) -> None:
        self.stats.turns += 1
        self._turn_clock.observe()
        self.log.info(self._turn_clock.summary(self.stats.turns))
        if not self._resumption_requested() or self._input_closed:
            return
        if self._client_calls or self._server_calls:
            # As Gemini does: no handle while a call is out; one follows its answer (``_after_answers``).
            self._told_unresumable = True
            await self._send(ResumptionUpdate(resumable=False))
            return
        await self._issue_handle()

    async def _after_answers(self) -> None:
        """The last call out was answered after the client heard ``resumable: false``: a handle again."""
        if (
            self._told_unresumable
            and self._resumption_requested()
            and not self._input_closed
            and not self._client_calls
            and not self._server_calls
            and not self._turn_in_flight()
        ):
            await self._issue_handle()

    def _resumption_requested(self) -> bool:
        return self.client_setup is not None and self.client_setup.session_resumption is not None

    async def _issue_handle(self, *, retire_previous: bool = True) -> None:
        """Save the conversation so far under a fresh handle, retire the old one, tell the client.

        Client calls still waiting for an answer are saved with it, so the
        session that resumes accepts their responses.
        """
        setup = self.client_setup
        assert setup is not None and self._backend_session is not None
        handle = new_handle()
        saved = SavedSession(
            setup=setup.model_dump(mode="json", exclude_none=True),
            history=[turn.model_dump(mode="json", exclude_none=True) for turn in self.conversation.snapshot()],
            backend=self.backend.name,
            backend_state=self._backend_session.resumption_state(),
            turns=self.stats.turns,
            profile=self.profile.name if self.profile is not None else None,
            conversation=self.conversation_id,
            pending_calls=dict(self._client_calls),
        )
        try:
            with metrics.STAGE_LATENCY.labels("store_save").time():
                await self.store.save(handle, saved, self.settings.handle_ttl_s)
        except StoreUnavailable:
            # The store logged the outage once; the conversation goes on, and the client keeps the handle it has.
            await self._send(ResumptionUpdate(resumable=False))
            return
        previous, self._handle = self._handle, handle
        self._told_unresumable = False
        await self._send(ResumptionUpdate(new_handle=handle, resumable=True))
        if previous is not None and retire_previous:
            with contextlib.suppress(StoreUnavailable):  # then the superseded handle expires by itself
                await self.store.delete(previous)

    async def _write_client(self) -> None:
        while True:
            try:
                event = await self.outbound.get()
            except QueueClosed:
                return
            await self.transport.send(encode_event(event))
            self.stats.messages_out += 1
