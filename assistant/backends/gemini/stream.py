"""One conversation with Gemini Live that outlives its connections.

Gemini ends every connection after about ten minutes (announced by a
``goAway``) and sometimes drops one (1011, network errors). The client should
notice neither, so this session keeps what it needs to carry the
conversation over to a new connection:

- the latest resumable handle Gemini issued (kept here, never forwarded: the
  client gets the project's own handles from the session);
- the history of completed turns, to re-seed a new Gemini session when no
  handle exists yet or Gemini refuses it;
- the user's input since that handle or turn (``ReplayBuffer``), sent again on
  the new connection, which is also where input goes while reconnecting.

A ``goAway`` moves the conversation at the next turn boundary, once Gemini has
issued the handle for the turn just finished, or when ``timeLeft`` runs short,
whichever comes first. A connection that drops is replaced at once; a reply
that was cut short is marked ``interrupted`` for the client (its audio is
flushed) and asked again by replaying the user's words. Consecutive failures
are bounded, with backoff, and end in a ``BackendError`` with the reason.

Everything that touches the connection runs in ``receive`` (one task), except
forwarding client input, which ``send`` does under a lock that the switch
holds while it replays, so input is neither lost nor sent twice.

Time comes from the backend's ``clock`` and ``sleep`` (the goAway deadline,
the backoff between reconnects), so tests run these rules on virtual time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from google.genai import Client, errors, types

from assistant import metrics
from assistant.backends.gemini.convert import (
    answers_as_text,
    connect_config,
    text_history,
    unanswered_calls,
    upstream_events,
    upstream_model,
)
from assistant.backends.gemini.frames import FrameLimiter
from assistant.backends.gemini.options import GeminiSettings
from assistant.backends.gemini.quirks import quirks_for
from assistant.backends.gemini.replay import ReplayBuffer
from assistant.backends.gemini.upstream import Failure, UpstreamLink, classify
from assistant.logs import SessionLogger
from assistant.protocol import (
    AudioChunk,
    ClientEvent,
    ClientTurns,
    CloseCode,
    Content,
    ContextChange,
    FunctionCall,
    GoingAway,
    Interrupted,
    OutputTranscript,
    ReplyAudio,
    ReplyParts,
    ReplyText,
    ResumptionUpdate,
    ServerEvent,
    SetupDone,
    ToolCalls,
    ToolCancellation,
    ToolResponses,
    TurnComplete,
    VideoFrame,
)
from assistant.session import BackendError, BackendStream, SessionRequest
from assistant.session.history import ConversationLog

logger = logging.getLogger("assistant.backends.gemini")

STATE_HANDLE = "upstream_handle"


def duration_seconds(text: str | None) -> float:
    """A protobuf Duration as JSON ("50s", "1.5s") in seconds; 0 when unreadable (leave now)."""
    try:
        return max(0.0, float((text or "").strip().removesuffix("s")))
    except ValueError:
        return 0.0


class GeminiStream(BackendStream):
    """A ``BackendStream`` over a chain of Live connections."""

    def __init__(
        self,
        client: Client,
        request: SessionRequest,
        settings: GeminiSettings,
        frames: FrameLimiter,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        """``clock`` times the goAway deadline and ``sleep`` waits out the backoff (the backend's, injected)."""
        self._client = client
        self._clock = clock
        self._sleep = sleep
        self._vertexai = bool(client.vertexai)
        self._settings = settings
        self._frames = frames
        self._setup = request.setup
        self._model = upstream_model(request.setup, settings)
        self._quirks = quirks_for(self._model)
        self._handle: str | None = (request.backend_state or {}).get(STATE_HANDLE)
        self._conversation = ConversationLog(request.history, max_bytes=request.history_bytes)
        self._history_at_turn: list[Content] = list(request.history)
        self._replay = ReplayBuffer(settings.replay_audio_s, request.history_bytes)
        self._latest_frame: VideoFrame | None = None
        self._link: UpstreamLink | None = None
        self._links_opened = 0
        self._live = False
        self._lock = asyncio.Lock()
        self._pushed_back: bytes | Exception | None = None
        self._pending_calls: set[str] = set()
        self._calls_made: dict[str, FunctionCall] = {}  # by this session's connections, until answered
        # Unanswered calls that the current connection never made (an earlier connection or server did):
        # their answers are told in words (``answers_as_text``).
        self._earlier_calls: dict[str, FunctionCall] = unanswered_calls(request.history)
        self._calls_at_interruption: set[str] = set()
        self._replying = False
        self._handle_fresh = self._handle is not None  # a handle from a saved session holds its history
        self._expect_handles = True
        self._leave_by: float | None = None
        self._failures = 0
        self._closing: set[asyncio.Task[None]] = set()
        self._moves = 0
        self.log = SessionLogger(logger, request.session_id, "upstream", "gemini")
        generation = request.setup.generation_config
        if not self._quirks.thinking and generation is not None and generation.thinking_config is not None:
            self.log.info("%s takes no thinking settings; the client's thinkingConfig is left out", self._model)

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Open the first connection; ``BackendError`` with Gemini's reason when it is refused."""
        link, resumed = await self._connect()
        self._link, self._live = link, True
        self.log.info("connected to %s (%s)", self._model, "resumed" if resumed else "new Gemini session")

    async def close(self) -> None:
        self._live = False
        if self._link is not None:
            await self._link.close()
            self._link = None
        await asyncio.gather(*self._closing, return_exceptions=True)
        self.log.info(
            "closed after %d connections (%d moves); frames %d sent, %d dropped; %.1f s of audio too old to replay",
            self._links_opened,
            self._moves,
            self._frames.sent,
            self._frames.dropped,
            self._replay.dropped_audio_s,
        )

    def resumption_state(self) -> dict[str, Any] | None:
        """Gemini's handle, when it holds the whole conversation so far; else None (re-seed from the history).

        A session saved mid-turn (a server draining) has heard more than the
        handle of the last turn holds, and may have calls out that a resumed
        Gemini session never made.
        """
        current = (
            self._handle_fresh
            and not self._pending_calls
            and not self._earlier_calls
            and self._conversation.snapshot() == self._history_at_turn
        )
        return {STATE_HANDLE: self._handle} if self._handle and current else None

    # -- client -> Gemini ----------------------------------------------------

    async def send(self, event: ClientEvent) -> None:
        if isinstance(event, VideoFrame):
            if not self._frames.admit(event):
                return
            self._latest_frame = event
        elif isinstance(event, ContextChange):
            changed = {name: getattr(event.update, name) for name in event.update.model_fields_set}
            self._setup = self._setup.model_copy(update=changed)
        elif isinstance(event, ToolResponses):
            self._pending_calls.difference_update(r.id for r in event.responses if r.id)
            for response in event.responses:
                self._calls_made.pop(response.id or "", None)
            for upstream in self._split_answers(event):
                await self._forward(upstream)
            return
        await self._forward(event)

    def send_now(self, event: ClientEvent) -> bool:
        """Microphone audio straight onto the open connection when its socket takes it at once.

        Anything else, a move in progress (the lock held) or a socket that
        would wait goes through ``send``.
        """
        if not isinstance(event, AudioChunk) or not self._live or self._link is None or self._lock.locked():
            return False
        if not self._link.send_now(event):
            return False
        self._conversation.client_event(event)
        self._replay.add(event)
        return True

    def _split_answers(self, event: ToolResponses) -> list[ClientEvent]:
        """Answers to this connection's calls as they are; to earlier calls, in words."""
        earlier = [(self._earlier_calls.pop(r.id), r) for r in event.responses if r.id in self._earlier_calls]
        current = [r for r in event.responses if not any(r is answer for _, answer in earlier)]
        out: list[ClientEvent] = [ToolResponses(current)] if current else []
        if earlier:
            self.log.info("told Gemini the results of %d calls an earlier connection made", len(earlier))
            out.append(ClientTurns(turns=[answers_as_text(earlier)], turn_complete=True))
        return out

    async def _forward(self, event: ClientEvent) -> None:
        self._conversation.client_event(event)
        async with self._lock:
            self._replay.add(event)
            if self._live and self._link is not None:
                await self._link.send(event)

    # -- Gemini -> client ----------------------------------------------------

    async def receive(self) -> AsyncIterator[ServerEvent]:
        while True:
            link = self._link
            assert link is not None
            item, self._pushed_back = self._pushed_back, None
            if item is None:
                item = await link.next(self._seconds_left())
            if item is None:
                for event in self._cut_turn():
                    yield event
                await self._switch("the connection's time ran out")
                continue
            events: list[ServerEvent] = []
            if isinstance(item, bytes):
                try:
                    events = upstream_events(item, self._vertexai)
                except errors.APIError as error:  # Gemini sent an error instead of a message
                    item = error
            if isinstance(item, Exception):
                failure = classify(item)
                if failure.fatal:
                    raise BackendError(failure.reason, CloseCode(failure.code), failure.detail)
                self.log.warning("connection %d lost: %s", link.number, failure)
                for event in self._cut_turn():
                    yield event
                await self._after_failure(failure)
                await self._switch("connection lost")
                continue
            for event in self._relay(events):
                if isinstance(event, TurnComplete):
                    await self._wait_for_handle(link)
                yield event
            if self._time_to_move():
                await self._switch("Gemini sent goAway")

    def _relay(self, events: list[ServerEvent]) -> list[ServerEvent]:
        """What the client sees of one upstream frame's events; updates the session's state."""
        out: list[ServerEvent] = []
        for event in events:
            match event:
                case ResumptionUpdate():
                    self._note_handle(event)
                    continue
                case GoingAway():
                    self._note_go_away(event.time_left)
                    continue
                case SetupDone():
                    continue
                case ToolCalls():
                    self._pending_calls.update(call.id for call in event.calls if call.id)
                    self._calls_made.update((call.id, call) for call in event.calls if call.id)
                    self._replying = True
                case ToolCancellation():
                    self._pending_calls.difference_update(event.ids)
                    self._calls_at_interruption.difference_update(event.ids)
                case ReplyAudio() | ReplyText() | ReplyParts() | OutputTranscript():
                    self._replying = True
                case Interrupted():
                    self._calls_at_interruption = set(self._pending_calls)
                case TurnComplete() if self._calls_at_interruption:
                    # Gemini did not cancel the calls the user talked over: cancel them for it.
                    out.append(ToolCancellation(sorted(self._calls_at_interruption)))
                    self._pending_calls -= self._calls_at_interruption
                    self._calls_at_interruption = set()
            out.append(event)
            self._conversation.server_event(event)
            if isinstance(event, TurnComplete):
                self._turn_completed()
            elif isinstance(event, ToolCalls):
                # What the user said led to this call: a move before it is answered must not replay it
                # (the new connection would call again), but re-seed with it, the call left pending.
                self._replay.turn_completed()
                self._history_at_turn = self._conversation.snapshot()
        return out

    def _turn_completed(self) -> None:
        self._replying = False
        self._calls_made = {i: call for i, call in self._calls_made.items() if i in self._pending_calls}
        self._handle_fresh = False
        self._failures = 0
        self._replay.turn_completed()
        self._history_at_turn = self._conversation.snapshot()

    def _note_handle(self, update: ResumptionUpdate) -> None:
        if update.resumable and update.new_handle:
            self._handle = update.new_handle
            self._handle_fresh = self._expect_handles = True
            self._replay.handle_issued()

    def _note_go_away(self, time_left: str | None) -> None:
        seconds = duration_seconds(time_left)
        margin = min(self._settings.go_away_margin_s, seconds / 2)
        self._leave_by = self._clock() + seconds - margin
        self.log.info("Gemini sent goAway (%s left); moving at the next turn boundary", time_left)

    async def _wait_for_handle(self, link: UpstreamLink) -> None:
        """Hold a turnComplete briefly for the handle Gemini sends right after it.

        Until that handle arrives, input the client sends for its next turn
        would count as older than the handle and be left out of a replay. And
        the session saves a resumption point when it routes turnComplete, with
        this backend's handle in it, which must already hold the turn. Gemini
        sends the handle at once, so the hold costs milliseconds; an upstream
        that sends none is waited for once, then no more.
        """
        if self._handle_fresh or not self._expect_handles:
            return
        item = await link.next(self._settings.handle_wait_s)
        if isinstance(item, bytes):
            try:
                events = upstream_events(item, self._vertexai)
            except errors.APIError:  # left for ``receive``, which reads it again and acts on it
                events = []
            if events and all(isinstance(event, ResumptionUpdate) for event in events):
                self._relay(events)
                return
        self._pushed_back = item
        if item is None:
            self.log.info(
                "no resumption handle within %.1f s of a turn; not waiting again", self._settings.handle_wait_s
            )
            self._expect_handles = False

    def _seconds_left(self) -> float | None:
        if self._leave_by is None:
            return None
        return max(0.0, self._leave_by - self._clock())

    def _time_to_move(self) -> bool:
        """After a goAway: between turns, with a handle that holds the turn just finished."""
        return self._leave_by is not None and self._handle_fresh and not self._replying and not self._pending_calls

    def _cut_turn(self) -> list[ServerEvent]:
        """Leaving a connection mid-turn: its reply stops here; its calls stay out, to be answered in words.

        The next connection starts afresh from the history (which holds what
        led to the calls) rather than from Gemini's handle, whose replay would
        make the model call again.
        """
        out: list[ServerEvent] = []
        if self._replying:
            out.append(Interrupted())
        for event in out:
            self._conversation.server_event(event)
        if self._pending_calls:
            self._earlier_calls.update((i, call) for i, call in self._calls_made.items() if i in self._pending_calls)
            self._handle = None
        self._calls_made.clear()
        self._pending_calls.clear()
        self._calls_at_interruption.clear()
        self._replying = False
        return out

    # -- connections ---------------------------------------------------------

    async def _open_link(self) -> tuple[UpstreamLink, bool]:
        """One connection attempt: resume the handle, or start afresh seeded with the history."""
        handle = self._handle
        self._links_opened += 1
        history: list[types.Content | types.ContentDict] = (
            [*text_history(self._history_at_turn)] if handle is None else []
        )
        config = connect_config(self._setup, self._settings, handle, self._quirks, seeded=bool(history))
        link = await UpstreamLink.open(
            self._client, self._model, config, self._settings.connect_timeout_s, self._links_opened
        )
        if history:
            try:
                await link.session.send_client_content(turns=history, turn_complete=False)
            except BaseException:
                await link.close()
                raise
        return link, handle is not None

    async def _connect(self) -> tuple[UpstreamLink, bool]:
        """Open a connection, retrying what may pass; ``BackendError`` for what will not."""
        while True:
            try:
                return await self._open_link()
            except Exception as error:
                failure = classify(error)
            if failure.fatal:
                if failure.rejected_request and self._handle is not None:
                    self.log.warning("Gemini refused the handle (%s); starting afresh from the history", failure)
                    self._handle = None
                    continue
                raise BackendError(failure.reason, CloseCode(failure.code), failure.detail)
            self.log.warning("connecting failed: %s", failure)
            await self._after_failure(failure)

    async def _after_failure(self, failure: Failure) -> None:
        """Count a failure; give up past the bound, else back off (not before the first retry)."""
        self._failures += 1
        attempts = self._settings.reconnect_attempts
        if self._failures > attempts:
            reason = f"lost Gemini and {attempts} reconnects failed: {failure.reason}"
            raise BackendError(reason, CloseCode.INTERNAL_ERROR, failure.detail)
        if self._failures > 1:
            delay = self._settings.backoff_initial_s * 2 ** (self._failures - 2)
            await self._sleep(min(delay, self._settings.backoff_max_s))

    async def _switch(self, why: str) -> None:
        """Carry the conversation to a new connection, then send what it has not heard."""
        started = time.perf_counter()
        async with self._lock:
            self._live = False
        if self._link is not None:
            # Nothing more is read from it: a goAway connection's last words would only race the new one.
            self._close_later(self._link)
            self._link = None
        self._leave_by = None
        self._pushed_back = None
        link, resumed = await self._connect()
        self._link = link  # from here ``close`` releases it, whatever happens next
        async with self._lock:
            backlog = self._replay.since_handle() if resumed else self._replay.since_turn()
            if self._latest_frame is not None:
                await link.send(self._latest_frame)
            for event in backlog:
                await link.send(event)
            self._live = True
        self._moves += 1
        metrics.UPSTREAM_RECONNECTS.inc()
        audio_s = sum(event.duration_s for event in backlog if isinstance(event, AudioChunk))
        self.log.info(
            "%s: moved to connection %d (%s) in %.0f ms, replayed %d inputs (%.1f s of audio)",
            why,
            link.number,
            "resumed" if resumed else "re-seeded",
            (time.perf_counter() - started) * 1000,
            len(backlog),
            audio_s,
        )

    def _close_later(self, link: UpstreamLink) -> None:
        task = asyncio.create_task(link.close(), name=f"gemini-close-{link.number}")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
