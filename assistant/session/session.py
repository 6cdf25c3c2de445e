"""One Live conversation, from the setup handshake to the close frame.

A ``Session`` joins a transport (a websocket, or an in-process pipe for the
desktop app) to a ``BackendStream``. It is the asyncio driver of a
``SessionCore`` (``core``), which holds the session's rules: the driver reads,
feeds the core what happened, and performs the effects it returns. After the
handshake these tasks run at once, joined by two bounded ``FlowQueue``s:

    client reader -> inbound queue -> backend writer
    backend reader -> outbound queue -> client writer
    saver: resumption saves, one at a time, in order

The reader and writer of each direction are separate so a slow backend never
stalls the client's socket and a stalled client never stalls the backend
beyond the queue's bound; audio gives way first (see ``queues``). A reader
whose queue is empty and whose writer waits for work writes through instead
(``Transport.send_now``, ``BackendStream.send_now``) when that needs no
waiting: nothing is ahead of the message, so order holds, and it spares the
task switch per 20 ms chunk; anything that would wait is queued as before.
Microphone chunks skip the client reader's wake-up too: a websocket hands
them over in its own callback (``Transport.push_messages``) on the same terms.
Saves run in their own task so the backend reader never waits for the
store. Whatever ends the session ends it with a close code and reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import time
from collections.abc import Callable
from typing import assert_never

from assistant import metrics
from assistant.logs import SessionLogger
from assistant.protocol import (
    ClientEvent,
    CloseCode,
    FunctionCall,
    FunctionResponse,
    ProtocolError,
    ReplyAudio,
    ServerEvent,
    Setup,
    SetupDone,
    VideoFrame,
    decode_client_frame,
    encode_event,
    fit_close_reason,
    parse_client_message,
    plain_audio_frame,
)
from assistant.protocol.errors import new_error_id, with_error_id
from assistant.session.backend import Backend, BackendError, BackendStream, SessionRequest
from assistant.session.core import SessionCore
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
from assistant.session.late import LateResultRouter, LateResults
from assistant.session.limits import SessionSettings, event_bytes
from assistant.session.profiles import ProfileResolver, SessionProfile, UnknownProfile
from assistant.session.queues import FlowQueue, QueueClosed
from assistant.session.resumption import ResumptionStore, SavedSession, StoreUnavailable
from assistant.session.tools import NoServerTools, ServerTools, ToolContext
from assistant.session.transport import Transport, TransportClosed
from assistant.session.turns import SessionStats

logger = logging.getLogger("assistant.session")

DRAINED_REASON = "the server is restarting; reconnect with your newest resumption handle"


def _detail(detail: str | None) -> str:
    """What a library said, for the log line only (the client got an error id instead)."""
    return f" ({detail})" if detail else ""


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
        self.transport = transport
        self.backend = backend
        self.store = store
        self.tools = tools or NoServerTools()
        self.settings = settings or SessionSettings()
        self.log = SessionLogger(logger, self.id, transport.peer, backend.name)
        self.core = SessionCore(
            self.id,
            backend_name=backend.name,
            tools=self.tools,
            log=self.log,
            clock=clock,
            history_bytes=self.settings.history_bytes,
            max_image_pixels=self.settings.max_image_pixels,
            observe_tools=observe_tools,
        )
        self.inbound: FlowQueue[ClientEvent] = FlowQueue(
            self.settings.inbound_queue_size, max_bytes=self.settings.inbound_queue_bytes, size=event_bytes
        )
        self.outbound: FlowQueue[ServerEvent] = FlowQueue(
            self.settings.outbound_queue_size,
            kind=lambda event: "reply audio" if isinstance(event, ReplyAudio) else "message",
            max_bytes=self.settings.outbound_queue_bytes,
            size=event_bytes,
        )
        self.close_code: int | None = None
        self.close_reason = ""
        self._backend_session: BackendStream | None = None
        self._tool_tasks: dict[str, asyncio.Task[None]] = {}
        self._saves: asyncio.Queue[SaveResumption] = asyncio.Queue()
        self._profiles = profiles
        self._requested_profile = requested_profile
        self._late: LateResultRouter = late_results or LateResults()
        self._receive_late = self._deliver_late_result  # one bound method: LateResults knows it by identity
        self._drain_requested = asyncio.Event()
        self._drain_time_left_s = 0.0
        self._changed = asyncio.Event()  # the core took an event: a drain looks again whether it may save

    # What the core keeps, as callers (tools, tests, the server's ops page) read it.

    @property
    def stats(self) -> SessionStats:
        return self.core.stats

    @property
    def conversation(self) -> ConversationLog:
        return self.core.conversation

    @property
    def conversation_id(self) -> str:
        return self.core.conversation_id

    @property
    def client_setup(self) -> Setup | None:
        return self.core.client_setup

    @property
    def profile(self) -> SessionProfile | None:
        return self.core.profile

    @property
    def latest_frame(self) -> VideoFrame | None:
        return self.core.latest_frame

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
            await self._deliver_late_result(response)
        client_tools = self.core.client_tool_count()
        self.log.info(
            "started: model %s, %d client tools, %d server tools%s",
            request.setup.model,
            client_tools,
            len(request.setup.function_declarations()) - client_tools,
            f", resumed after {self.stats.turns} turns" if request.history else "",
        )

    async def _session_request(self, setup: Setup) -> SessionRequest:
        """Load the conversation a resumption handle names, resolve the persona, and let the core take the setup."""
        saved: SavedSession | None = None
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
        profile_name = self._requested_profile or (saved.profile if saved is not None else None)
        return self.core.open(setup, saved, await self._resolve_profile(profile_name))

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

    async def _pump(self) -> tuple[int, str]:
        tasks = [
            asyncio.create_task(self._read_client(), name=f"{self.id}-client-reader"),
            asyncio.create_task(self._write_backend(), name=f"{self.id}-backend-writer"),
            asyncio.create_task(self._read_backend(), name=f"{self.id}-backend-reader"),
            asyncio.create_task(self._save_in_order(), name=f"{self.id}-saver"),
        ]
        writer = asyncio.create_task(self._write_client(), name=f"{self.id}-client-writer")
        tasks.append(asyncio.create_task(self._drain_when_asked(), name=f"{self.id}-drain"))
        try:
            done, _ = await asyncio.wait([*tasks, writer], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            # Only the backend reader (the backend closed the session) and a drain end without an
            # error. Deliver what was said before closing, the handle of the last turn included.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._saves.join(), self.settings.drain_timeout_s)
            self.outbound.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(writer), self.settings.drain_timeout_s)
            if self.core.input_closed:
                return CloseCode.GOING_AWAY, DRAINED_REASON
            return CloseCode.NORMAL, "the backend ended the session"
        finally:
            for task in [*tasks, writer]:
                task.cancel()
            await asyncio.gather(*tasks, writer, return_exceptions=True)

    async def _release(self) -> None:
        resumable = self.core.handle is not None  # the client holds a handle it may come back with
        await self._late.detach(
            self.conversation_id, self._receive_late, self.settings.handle_ttl_s if resumable else None
        )
        self.inbound.close()
        self.outbound.close()
        for task in self._tool_tasks.values():
            task.cancel()
        await asyncio.gather(*self._tool_tasks.values(), return_exceptions=True)
        self._tool_tasks.clear()
        if self._backend_session is not None:
            try:
                await self._backend_session.close()
            except Exception:
                self.log.exception("backend session failed to close")

    # -- effects -------------------------------------------------------------

    async def _perform(self, effects: list[Effect]) -> None:
        """Do what the core decided, in its order."""
        for effect in effects:
            match effect:
                case SendToClient(event, droppable):
                    if not (self.outbound.consumer_idle and self._send_to_client_now(event)):
                        await self.outbound.put(event, droppable=droppable)
                case SendToBackend(event, droppable):
                    if not self._send_to_backend_now(event, droppable):
                        await self.inbound.put(event, droppable=droppable)
                case FlushReplyAudio():
                    self.stats.flushed_on_interrupt += self.outbound.discard(
                        lambda queued: isinstance(queued, ReplyAudio)
                    )
                case StartServerTool(call):
                    assert call.id is not None
                    self._tool_tasks[call.id] = asyncio.create_task(
                        self._run_server_tool(call), name=f"{self.id}-tool-{call.name}"
                    )
                case CancelServerTool(call_id):
                    task = self._tool_tasks.pop(call_id, None)
                    if task is not None:
                        task.cancel()
                case SaveResumption():
                    assert self._backend_session is not None
                    state = self._backend_session.resumption_state()  # as of now, not when the store gets to it
                    saved = dataclasses.replace(effect.saved, backend_state=state)
                    self._saves.put_nowait(dataclasses.replace(effect, saved=saved))
                case DeleteHandle(handle):
                    with contextlib.suppress(StoreUnavailable):  # then the superseded handle expires by itself
                        await self.store.delete(handle)
                case Close(code, reason):
                    raise ProtocolError(reason, code)
                case _:
                    assert_never(effect)
        self._changed.set()

    async def _save_in_order(self) -> None:
        """Resumption saves, one at a time and in order, off the readers' path."""
        while True:
            save = await self._saves.get()
            try:
                try:
                    with metrics.STAGE_LATENCY.labels("store_save").time():
                        await self.store.save(save.handle, save.saved, self.settings.handle_ttl_s)
                except StoreUnavailable:
                    await self._perform(self.core.save_failed(save))
                else:
                    await self._perform(self.core.save_done(save))
            finally:
                self._saves.task_done()

    # -- client -> backend ---------------------------------------------------

    async def _read_client(self) -> None:
        pushed = self.transport.push_messages(self._client_frame_now)
        try:
            while True:
                data = await self.transport.recv()
                if self.core.frame_received():
                    await self._perform(self.core.client_message(decode_client_frame(data)))
        finally:
            if pushed:
                self.transport.push_messages(None)

    def _client_frame_now(self, data: bytes) -> bool:
        """A plain microphone chunk, taken in the socket's callback while the backend writer waits for work.

        The transport offers a message only when nothing is queued for the
        reader before it, and the core took every earlier one when it was
        read, so the chunk is next in order. An idle writer means an empty
        queue, so the chunk never has to wait for room (a callback cannot);
        anything else, malformed frames too, is left to the reader.
        """
        if not (self.inbound.consumer_idle and self._backend_session is not None):
            return False
        chunk = plain_audio_frame(data)
        if chunk is None:
            return False
        if self.core.frame_received():
            self._send_to_backend_now(self.core.client_audio(chunk), droppable=True)
            self._changed.set()
        return True

    def _send_to_backend_now(self, event: ClientEvent, droppable: bool) -> bool:
        """Write-through when the writer waits for work, else queue without waiting; False: only ``put`` can."""
        backend = self._backend_session
        if self.inbound.consumer_idle and backend is not None and backend.send_now(event):
            return True
        return self.inbound.put_nowait(event, droppable=droppable)

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
            await self._perform(self.core.backend_event(event))

    async def _run_server_tool(self, call: FunctionCall) -> None:
        started = time.perf_counter()
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
            effects = self.core.tool_failed(call)
        else:
            effects = self.core.tool_finished(call, response)
        finally:
            assert call.id is not None
            self._tool_tasks.pop(call.id, None)
        elapsed_s = time.perf_counter() - started
        metrics.STAGE_LATENCY.labels("server_tool").observe(elapsed_s)
        self.log.info("server tool %s answered in %.0f ms", call.name, elapsed_s * 1000)
        await self._perform(effects)

    async def _late_result(self, response: FunctionResponse) -> None:
        """A result that came after its call returned: to this conversation's session, whichever it is now."""
        await self._late.deliver(self.conversation_id, response)

    async def _deliver_late_result(self, response: FunctionResponse) -> None:
        await self._perform(self.core.tool_result(response))

    async def _write_client(self) -> None:
        while True:
            try:
                event = await self.outbound.get()
            except QueueClosed:
                return
            await self.transport.send(encode_event(event))
            self.stats.messages_out += 1

    def _send_to_client_now(self, event: ServerEvent) -> bool:
        """Write-through: the event goes out from the task that made it, when the writer has nothing queued."""
        if not self.transport.send_now(encode_event(event)):
            return False
        self.stats.messages_out += 1
        return True

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

    async def _drain_when_asked(self) -> None:
        await self._drain_requested.wait()
        loop = asyncio.get_running_loop()
        await self._perform(self.core.drain(loop.time(), self._drain_time_left_s))
        while not self.core.drain_settled(loop.time()):
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.core.settle_by() - loop.time())
        await self._perform(self.core.close_input())
        await self._saves.join()  # the client hears its handle before the close
