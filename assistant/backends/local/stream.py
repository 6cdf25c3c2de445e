"""One conversation with the local stack: turn-taking, streaming ASR, replies and barge-in.

Input side. Each 16 kHz chunk goes through Silero VAD (0.2 ms a frame, on
the event loop) and the ``TurnDetector``; while the user holds the floor a
``UserTurn`` collects the audio and decodes it every ``PARTIAL_STEP_S``,
sending newly agreed words as input-transcription fragments. When speech
pauses, the final decode starts at once (speculatively) and, when it is
ready and the user is still silent, so does the reply: its messages wait
behind a gate. If the silence lasts (``TurnEnded``) the final fragment is
sent and the gate opens, so the reply is often already speaking; if the
user carries on, both are thrown away unseen.

Output side. A ``Reply`` asks the dialogue what to say or call, speaks text
through a ``Speaker`` (first clause early, paced to playback), sends tool
calls and waits for their responses by id, then asks again. A barge-in
(VAD onset during a reply) stops it at once: ``interrupted``, cancellation
of calls still unanswered, ``turnComplete``, and the history keeps only what
the user heard.

Late tool responses (a timer firing: same call id, ``scheduling:
INTERRUPT``) are spoken when they arrive, interrupting a reply but never the
user; ``WHEN_IDLE`` waits for a quiet moment, ``SILENT`` only joins the
history.

What Gemini reports, this does too: ``voiceActivity`` when the VAD hears
speech start and the turn end (and ``voiceActivityDetectionSignal`` if the
setup sets ``explicitVadSignal``), ``usageMetadata`` with the chat model's
token counts on ``turnComplete``, and ``turnCompleteReason`` with
``waitingForInput`` when the reply asks the user for something it needs.

All timing decisions use audio time (seconds of input received) or an
injected clock, so the rules are testable without sleeps; blocking model
calls run on the backend's executor threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

from assistant.backends.local.asr import (
    ASK_AGAIN,
    MIN_PARTIAL_WINDOW_S,
    Heard,
    Recognizer,
    SpeechWindow,
    StreamingTranscript,
    hear,
    recogniser_prompt,
    trim_window,
    vocabulary_prompt,
)
from assistant.backends.local.dialogue import CallTools, Conversation, Dialogue, Say
from assistant.backends.local.llm import GenerationSettings, TokenUsage
from assistant.backends.local.speech import PLAYOUT_LEAD_S, PlayoutClock, Speaker, SpokenRecord
from assistant.backends.local.tts import Synthesizer, Voices
from assistant.backends.local.turn_model import TurnModel, sounds_finished
from assistant.backends.local.turns import (
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    TurnDetector,
    TurnEnded,
    TurnEvent,
    TurnSettings,
)
from assistant.backends.local.unhonoured import unhonoured_fields
from assistant.protocol import (
    ActivityEnd,
    ActivityStart,
    AudioChunk,
    AudioStreamEnd,
    ClientEvent,
    ClientTurns,
    Content,
    ContextChange,
    FunctionCall,
    FunctionResponse,
    GenerationComplete,
    InputTranscript,
    Interrupted,
    Part,
    ReplyText,
    ServerEvent,
    TextInput,
    ToolCalls,
    ToolCancellation,
    ToolResponses,
    TurnComplete,
    UsageMetadata,
    VadSignal,
    VideoFrame,
    VoiceActivityEvent,
)
from assistant.protocol.models import ContextUpdate, duration
from assistant.session import BackendError, BackendStream, SessionRequest
from audio.vad import SileroVad

logger = logging.getLogger("assistant.local.stream")

SAMPLE_RATE = 16_000
PARTIAL_STEP_S = 0.5  # new audio between partial decodes
PREROLL_S = 0.25  # audio kept from before the detected start of speech
RECENT_AUDIO_S = 1.5
TOOL_TIMEOUT_S = 60.0
# A NON_BLOCKING function's answer that comes this soon is spoken in the same turn (a timer's "set");
# a later one is announced when it comes, as its scheduling says, and the turn does not wait for it.
NON_BLOCKING_GRACE_S = 1.0


@dataclass(frozen=True)
class SessionParts:
    """What every session shares: loaded models, their threads and the clock."""

    recognizer: Recognizer
    asr_executor: Executor
    tts_executor: Executor
    voices: Voices
    new_dialogue: Callable[[], Dialogue]
    new_vad: Callable[[], SileroVad]
    default_silence_ms: int
    eager_end_ms: int
    clock: Callable[[], float]
    observe: Callable[[str, str, float], None] | None = None  # (session id, milestone, clock time)
    turn_model: TurnModel | None = None  # does the voice sound finished (see ``turn_model``)
    agreed_end_ms: int = 0  # silence that ends a turn when the words and the voice say it is complete


class UserTurn:
    """One utterance: its audio, its transcript, and the speculative work done in its pauses."""

    def __init__(self, session: LocalStream, window: SpeechWindow, heard_before: str = "") -> None:
        self.session = session
        self.window = window
        self.transcript = StreamingTranscript(prompt=heard_before)
        self.carried = ""  # text of an earlier turn the user ran on from
        self.emitted = False
        self._decoded_s = 0.0
        self._partial: asyncio.Task[None] | None = None
        self._speculation: asyncio.Task[Heard] | None = None
        self.speculative_reply: Reply | None = None
        self.paused = False

    @property
    def text(self) -> str:
        return f"{self.carried}{self.transcript.text}".strip()

    def heard_audio(self) -> None:
        """New audio arrived: decode again once enough has accumulated."""
        if self.paused or self._partial is not None or self._speculation is not None:
            return
        if self.window.duration_s < MIN_PARTIAL_WINDOW_S:
            return
        if self.window.duration_s - self._decoded_s >= PARTIAL_STEP_S:
            self._partial = self.session.spawn(self._decode_partial(), "asr-partial")

    async def _decode_partial(self) -> None:
        try:
            audio = self.window.audio()
            self._decoded_s = self.window.duration_s
            heard = await self.session.run_asr(
                hear, self.session.parts.recognizer, audio, self.transcript.prefix, self.transcript.context
            )
            fragment = self.transcript.agree(heard.text, heard.logprob)
            if fragment:
                self.session.emit_input(fragment, finished=False)
                self.emitted = True
            recognizer = self.session.parts.recognizer
            if await self.session.run_asr(trim_window, recognizer, self.window, self.transcript):
                self._decoded_s = self.window.duration_s
        finally:
            self._partial = None

    def pause(self) -> None:
        """Speech stopped: decode the tail now, and prepare the reply if it is ready in time."""
        self.paused = True
        self._speculation = self.session.spawn(self._speculate(), "asr-speculative-final")

    def resume(self) -> None:
        """The user went on: the speculative final and reply are void."""
        self.paused = False
        if self._speculation is not None:
            self._speculation.cancel()
            self._speculation = None
        self.drop_speculative_reply()

    def drop_speculative_reply(self) -> None:
        if self.speculative_reply is not None:
            self.speculative_reply.stop()
            self.speculative_reply = None

    async def _speculate(self) -> Heard:
        # the voice's verdict needs only the audio: it is heard on its own thread while Whisper decodes
        verdict = asyncio.ensure_future(self._voice_sounds_finished())
        try:
            if self._partial is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._partial)
            hypothesis = await self._decode_tail()
            text = f"{self.text} {hypothesis.text.strip()}".strip()
            session = self.session
            if text and self.paused and session.turn_settings.eager_silence_s is not None:
                if await session.dialogue.sounds_complete(text, session.conversation.tool_names):
                    session.milestone("words_complete")
                    session.detector.sounds_complete(voice_agrees=await verdict)
            if text and self.paused:
                self.speculative_reply = session.prepare_reply(text)
            return hypothesis
        finally:
            verdict.cancel()

    async def _voice_sounds_finished(self) -> bool:
        """The end-of-turn model's verdict on the audio so far (False without one, or when it is not used)."""
        session = self.session
        model = session.parts.turn_model
        if model is None or session.turn_settings.agreed_silence_s is None:
            return False
        finished = await asyncio.to_thread(sounds_finished, model, self.window.audio())
        if finished:
            session.milestone("voice_finished")
        return finished

    async def _decode_tail(self) -> Heard:
        return await self.session.run_asr(
            hear,
            self.session.parts.recognizer,
            self.window.audio(),
            self.transcript.prefix,
            self.transcript.context,
        )

    async def final(self) -> tuple[str, str]:
        """The whole utterance and the fragment not yet sent, decoding only what the pause did not."""
        hypothesis: Heard | None = None
        if self._speculation is not None:
            with contextlib.suppress(asyncio.CancelledError):
                hypothesis = await self._speculation
        if hypothesis is None:
            if self._partial is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._partial)
            hypothesis = await self._decode_tail()
        fragment = self.transcript.finish(hypothesis.text, hypothesis.logprob)
        return self.text, fragment

    def cancel(self) -> None:
        for task in (self._partial, self._speculation):
            if task is not None:
                task.cancel()
        self.drop_speculative_reply()


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
            ahead = self.playout.ahead()
            if ahead <= PLAYOUT_LEAD_S:
                self._send(message, audio_s)
                return
            await asyncio.sleep(ahead - PLAYOUT_LEAD_S)

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
            await asyncio.sleep(self.playout.ahead())  # barge-in still applies until playback ends
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
        await self.emit(ToolCalls(calls))
        await self._committed.wait()
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
        self.session.answered.update(response.id or "" for response in responses)
        if not responses:
            return False
        self.conversation.turns.append(Content(role="user", parts=[Part(function_response=r) for r in responses]))
        return True


class LocalStream(BackendStream):
    """A ``BackendStream`` over the local models."""

    def __init__(self, parts: SessionParts, request: SessionRequest, vad: SileroVad | None) -> None:
        setup = request.setup
        self.parts = parts
        self.id = request.session_id
        self.turn_settings = TurnSettings.from_config(
            setup.realtime_input_config,
            parts.default_silence_ms,
            parts.eager_end_ms,
            parts.agreed_end_ms if parts.turn_model is not None else 0,
        )
        self.speak_audio = "AUDIO" in setup.response_modalities()
        self.vad_signals = bool(setup.explicit_vad_signal)
        self.input_transcripts = setup.input_audio_transcription is not None
        self.output_transcripts = setup.output_audio_transcription is not None
        self.voice = parts.voices.select(setup.voice_name())
        self.dialogue = parts.new_dialogue()
        self.generation = GenerationSettings.from_config(setup.generation_config)
        self.conversation = Conversation(
            system_instruction=setup.system_instruction.text() if setup.system_instruction else None,
            turns=list(request.history),
            tools=setup.function_declarations(),
        )
        self.vad = vad  # None when the client takes turns with activityStart/activityEnd
        self.detector = TurnDetector(self.turn_settings)
        self.latest_frame: VideoFrame | None = None
        self.user: UserTurn | None = None
        self.reply: Reply | None = None
        self.answered: set[str] = set()
        self._waiting: deque[Content] = deque()  # user input or announcements that wait for a quiet moment
        self._reply_requested = False
        self._ask_again = False  # the next reply asks the user to say it again (the recogniser was unsure)
        self._audio_s = 0.0
        self._vad_s = 0.0
        self._recent: deque[np.ndarray] = deque()
        self._recent_s = 0.0
        self._out: asyncio.Queue[ServerEvent | BaseException | None] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        logger.info(
            "[%s] local session: voice %s, %s turn-taking, %d tools",
            self.id,
            self.voice.name,
            "automatic" if self.turn_settings.automatic else "manual",
            len(self.conversation.tools),
        )
        ignored = unhonoured_fields(setup)
        if ignored:
            logger.info("[%s] the local backend cannot honour %s; runs without them", self.id, ", ".join(ignored))

    # -- plumbing ------------------------------------------------------------------

    def runs_in_background(self, name: str) -> bool:
        """``name`` is declared NON_BLOCKING: the model goes on without waiting for its answer."""
        return any(d.name == name and d.behavior == "NON_BLOCKING" for d in self.conversation.tools)

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine, name=f"{self.id}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            failure = BackendError("the local backend failed", detail=f"{task.get_name()}: {error!r}")
            logger.error("[%s] %s failed (error %s)", self.id, task.get_name(), failure.error_id, exc_info=error)
            self._out.put_nowait(failure)

    async def run_asr(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.parts.asr_executor, function, *args)

    def put(self, message: ServerEvent) -> None:
        if not self._closed:
            self._out.put_nowait(message)

    def milestone(self, name: str, at: float | None = None) -> None:
        """Report a point of the turn's timeline (for ``assistant bench latency``)."""
        if self.parts.observe is not None:
            self.parts.observe(self.id, name, self.parts.clock() if at is None else at)

    def emit_input(self, text: str, finished: bool) -> None:
        if self.input_transcripts:
            self.put(InputTranscript(text, finished=finished))

    # -- BackendStream ---------------------------------------------------------------

    async def send(self, event: ClientEvent) -> None:
        if isinstance(event, AudioChunk):
            self._on_audio(event.pcm)
        elif isinstance(event, VideoFrame):
            self.latest_frame = event
            self.conversation.video = True
        elif isinstance(event, TextInput):
            self._user_said(event.text)
        elif isinstance(event, ActivityStart):
            self._on_speech_start(self._audio_s)
        elif isinstance(event, ActivityEnd):
            self._end_user_turn()
        elif isinstance(event, AudioStreamEnd):
            for turn_event in self.detector.flush(self._audio_s):
                self._on_turn_event(turn_event)
        elif isinstance(event, ClientTurns):
            self._on_client_turns(event)
        elif isinstance(event, ToolResponses):
            for response in event.responses:
                self._on_tool_response(response)
        elif isinstance(event, ContextChange):
            self._on_context_change(event.update)

    async def receive(self) -> AsyncIterator[ServerEvent]:
        while True:
            item = await self._out.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    async def close(self) -> None:
        self._closed = True
        if self.reply is not None:
            self.reply.stop()
        if self.user is not None:
            self.user.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._out.put_nowait(None)

    # -- input audio and turn-taking -----------------------------------------------------

    def _on_audio(self, pcm: bytes) -> None:
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        self._audio_s += len(samples) / SAMPLE_RATE
        if self.user is not None:
            self.user.window.append(samples)
        else:
            self._remember_recent(samples)
        if self.vad is not None:
            for probability in self.vad.process(pcm):
                start = self._vad_s
                self._vad_s += self.vad.frame_seconds
                for turn_event in self.detector.push(probability, start, self.vad.frame_seconds):
                    self._on_turn_event(turn_event)
        if self.user is not None:
            self.user.heard_audio()

    def _remember_recent(self, samples: np.ndarray) -> None:
        self._recent.append(samples)
        self._recent_s += len(samples) / SAMPLE_RATE
        while self._recent and self._recent_s - len(self._recent[0]) / SAMPLE_RATE >= RECENT_AUDIO_S:
            self._recent_s -= len(self._recent.popleft()) / SAMPLE_RATE

    def _on_turn_event(self, event: TurnEvent) -> None:
        if isinstance(event, SpeechStarted | TurnEnded):
            self._voice_activity(event)
        if isinstance(event, SpeechStarted):
            self._on_speech_start(event.at)
        elif isinstance(event, SpeechPaused) and self.user is not None:
            self.user.pause()
        elif isinstance(event, SpeechResumed) and self.user is not None:
            self.user.resume()
        elif isinstance(event, TurnEnded):
            self._end_user_turn()

    def _voice_activity(self, event: SpeechStarted | TurnEnded) -> None:
        """Tell the client what the VAD heard: ``voiceActivity``, and the VAD signal if the setup asked for it."""
        started = isinstance(event, SpeechStarted)
        kind = "ACTIVITY_START" if started else "ACTIVITY_END"
        offset = event.speech_end if isinstance(event, TurnEnded) else event.at
        self.put(VoiceActivityEvent(kind, duration(offset)))
        if self.vad_signals:
            signal = "VAD_SIGNAL_TYPE_SOS" if started else "VAD_SIGNAL_TYPE_EOS"
            self.put(VadSignal(signal))

    def _on_speech_start(self, at: float) -> None:
        """The user started speaking (VAD onset or activityStart): barge in, open a turn."""
        if self.reply is not None and self.reply.committed and self.turn_settings.interrupts:
            self._interrupt()
        if self.user is not None:
            return
        window = SpeechWindow()
        recent = np.concatenate(list(self._recent)) if self._recent else np.zeros(0, dtype=np.float32)
        keep = int((self._audio_s - at + PREROLL_S) * SAMPLE_RATE)
        window.append(recent[-keep:] if 0 < keep < len(recent) else recent)
        self._recent.clear()
        self._recent_s = 0.0
        vocabulary = vocabulary_prompt(self.conversation.user_texts())
        self.user = UserTurn(self, window, recogniser_prompt(vocabulary, self.conversation.last_text("model")))

    def _end_user_turn(self) -> None:
        user, self.user = self.user, None
        if user is not None:
            self.milestone("turn_end")
            self.spawn(self._finish_user_turn(user), "final-transcript")

    async def _finish_user_turn(self, user: UserTurn) -> None:
        text, fragment = await user.final()
        self.milestone("final_transcript")
        if fragment or user.emitted:
            self.emit_input(fragment, finished=True)
        if not text:
            user.drop_speculative_reply()
            self._start_waiting()  # a noise held the floor: what waited for it (a timer's alarm) goes on now
            return
        if self.user is not None:
            # the user ran on into a new turn while this one was being finished: one utterance
            self.user.carried = f"{text} "
            user.drop_speculative_reply()
            return
        logger.info("[%s] user: %s", self.id, text)
        if user.transcript.unsure:
            logger.info("[%s] unsure of what was heard (%.2f): asking again", self.id, user.transcript.confidence)
            user.drop_speculative_reply()
            self._ask_again = True
            self._user_said(text, already_heard=True)
            return
        prepared, user.speculative_reply = user.speculative_reply, None
        if (
            prepared is not None
            and self.reply is None
            and prepared.user_text == text
            and prepared.base_turns == len(self.conversation.turns)
        ):
            self.conversation = prepared.conversation
            self.reply = prepared
            prepared.commit()
            return
        if prepared is not None:
            prepared.stop()
        self._user_said(text, already_heard=True)

    # -- replies ----------------------------------------------------------------------

    def prepare_reply(self, user_text: str) -> Reply | None:
        """A speculative reply to ``user_text``, held back until the turn really ends."""
        if self.reply is not None or self._closed:
            return None
        conversation = Conversation(
            self.conversation.system_instruction,
            [*self.conversation.turns, Content(role="user", parts=[Part(text=user_text)])],
            self.conversation.tools,
            self.conversation.video,
        )
        return Reply(self, conversation, committed=False, user_text=user_text)

    def _user_said(self, text: str, already_heard: bool = False) -> None:
        """A complete user input (a turn of speech or typed text): reply to it."""
        if not already_heard and self.reply is not None and self.turn_settings.interrupts:
            self._interrupt()
        self._queue_input(Content(role="user", parts=[Part(text=text)]))

    def _queue_input(self, content: Content) -> None:
        self._waiting.append(content)
        self._start_waiting()

    def _start_waiting(self) -> None:
        """Reply to what waits, once neither the user nor a reply holds the floor."""
        if self.reply is not None or self.user is not None or self._closed:
            return
        if not self._waiting and not self._reply_requested:
            return
        while self._waiting:
            self.conversation.turns.append(self._waiting.popleft())
        self._reply_requested = False
        fixed, self._ask_again = (ASK_AGAIN if self._ask_again else None), False
        self.reply = Reply(self, self.conversation, committed=True, fixed=fixed)

    def reply_finished(self, reply: Reply) -> None:
        if self.reply is reply:
            self.reply = None
            self._start_waiting()

    def _interrupt(self) -> None:
        """Barge-in: stop the reply and tell the client, in the order Gemini does."""
        reply, self.reply = self.reply, None
        if reply is None:
            return
        unanswered = reply.stop()
        self.put(Interrupted())
        if unanswered:
            self.put(ToolCancellation(unanswered))
        self.put(TurnComplete(usage=reply.usage()))
        logger.info("[%s] barge-in: reply stopped after %.1f s of audio", self.id, reply.playout.played())

    # -- other client events --------------------------------------------------------------

    def _on_client_turns(self, event: ClientTurns) -> None:
        contents = [turn.model_copy(update={"role": turn.role or "user"}) for turn in event.turns]
        if not event.turn_complete:
            self.conversation.turns.extend(contents)
            return
        if self.reply is not None:
            self._interrupt()
        speaking = self.user is not None
        if speaking:
            self._end_user_turn()  # "answer what you have heard"
        self._waiting.extend(contents)
        if not contents and not speaking:
            self._reply_requested = True
        self._start_waiting()

    def _on_tool_response(self, response: FunctionResponse) -> None:
        if self.reply is not None and self.reply.waiting_for(response.id):
            self.reply.deliver(response)
            return
        announcement = Content(role="user", parts=[Part(function_response=response)])
        scheduling = response.scheduling or "WHEN_IDLE"
        if scheduling == "SILENT":
            self.conversation.turns.append(announcement)
        elif scheduling == "INTERRUPT" and self.user is None:
            if self.reply is not None:
                self._interrupt()
            self._queue_input(announcement)
        else:
            self._queue_input(announcement)

    def _on_context_change(self, update: ContextUpdate) -> None:
        if update.system_instruction is not None:
            self.conversation.system_instruction = update.system_instruction.text()
        if update.tools is not None:
            # the session appends the server's tools to the client's new list
            self.conversation.tools = [d for tool in update.tools for d in tool.function_declarations or []]
