"""One conversation with the local stack: streaming ASR, replies and barge-in, as the ``Floor`` decides.

Who holds the floor, and what happens when that changes, is the ``Floor``'s
business (``floor``: barge-in, speculative replies, run-on, input that waits
for a quiet moment, the scheduling of late tool responses); this module
feeds it events and performs the effects it returns.

Input side. Each 16 kHz chunk goes through Silero VAD (0.2 ms a frame, on
the event loop) and the ``TurnDetector``; while the user holds the floor a
``UserTurn`` (``user_turn``) collects the audio and decodes it every
``PARTIAL_STEP_S``, sending newly agreed words as input-transcription
fragments. When speech pauses, the final decode starts at once
(speculatively) and, when it is ready and the user is still silent, so does
the reply: its messages wait behind a gate until the turn really ends
(``TurnEnded``) and the floor commits it, so the reply is often already
speaking.

Output side. A ``Reply`` (``reply``) asks the dialogue what to say or call, speaks text
through a ``Speaker`` (first clause early, paced to playback), sends tool
calls and waits for their responses by id, then asks again. A barge-in
stops it at once: ``interrupted``, cancellation of calls still unanswered,
``turnComplete``, and the history keeps only what the user heard.

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
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

from assistant.backends.local.asr import Recognizer
from assistant.backends.local.conversation import Conversation, Dialogue
from assistant.backends.local.floor import (
    AddToHistory,
    CarryInto,
    CommitPrepared,
    ContinueTurn,
    DropPrepared,
    Effect,
    FinishTurn,
    Floor,
    Interrupt,
    KeepEnded,
    OpenTurn,
    ReadAhead,
    StartReply,
)
from assistant.backends.local.llm import GenerationSettings
from assistant.backends.local.reply import Reply
from assistant.backends.local.transcript import ASK_AGAIN, SpeechWindow, recogniser_prompt, vocabulary_prompt
from assistant.backends.local.tts import Voices
from assistant.backends.local.turn_model import TurnModel
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
from assistant.backends.local.user_turn import UserTurn
from assistant.protocol import (
    ActivityEnd,
    ActivityStart,
    AudioChunk,
    AudioStreamEnd,
    ClientEvent,
    ClientTurns,
    Content,
    ContextChange,
    EarlyToolCalls,
    FunctionCall,
    FunctionResponse,
    InputTranscript,
    Interrupted,
    Part,
    ServerEvent,
    TextInput,
    ToolCancellation,
    ToolResponses,
    TurnComplete,
    VadSignal,
    VideoFrame,
    VoiceActivityEvent,
)
from assistant.protocol.models import ContextUpdate, duration
from assistant.session import BackendError, BackendStream, SessionRequest
from audio.vad import SileroVad

logger = logging.getLogger("assistant.local.stream")

SAMPLE_RATE = 16_000
PREROLL_S = 0.25  # audio kept from before the detected start of speech
RECENT_AUDIO_S = 1.5
DROPPED_CALLS_KEPT = 32  # ids of dropped early calls whose answer may still be on its way


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
    sleep: Callable[[float], Awaitable[None]]  # waits on ``clock``'s time (the reply's pacing to playback)
    observe: Callable[[str, str, float], None] | None = None  # (session id, milestone, clock time)
    turn_model: TurnModel | None = None  # does the voice sound finished (see ``turn_model``)
    agreed_end_ms: int = 0  # silence that ends a turn when the words and the voice say it is complete


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
        self.floor: Floor[UserTurn, Reply] = Floor(self.turn_settings.interrupts, self.turn_settings.silence_s)
        self._early_calls: dict[str, Reply] = {}  # id -> the uncommitted reply that offered the call early
        self._dropped_calls: deque[str] = deque(maxlen=DROPPED_CALLS_KEPT)  # answers to ignore if they come
        self._audio_s = 0.0
        self._vad_s = 0.0
        self._recent: deque[np.ndarray] = deque()
        self._recent_s = 0.0
        self._out: asyncio.Queue[ServerEvent | BaseException | None] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
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

    @property
    def user(self) -> UserTurn | None:
        """The user's turn of speech while they hold the floor."""
        return self.floor.user

    @property
    def reply(self) -> Reply | None:
        """The committed reply while it holds the floor."""
        return self.floor.reply

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
        if not self.floor.closed:
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
            self._perform(self.floor.typed(event.text))
        elif isinstance(event, ActivityStart):
            self._perform(self.floor.speech_started(self._audio_s))
        elif isinstance(event, ActivityEnd):
            self._perform(self.floor.turn_ended())
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
        self.floor.close()
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
            self._perform(self.floor.speech_started(event.at))
        elif isinstance(event, SpeechPaused) and self.user is not None:
            self.user.pause()
        elif isinstance(event, SpeechResumed) and self.user is not None:
            self.user.resume()
        elif isinstance(event, TurnEnded):
            self._perform(self.floor.turn_ended(event.speech_end))

    def _voice_activity(self, event: SpeechStarted | TurnEnded) -> None:
        """Tell the client what the VAD heard: ``voiceActivity``, and the VAD signal if the setup asked for it."""
        started = isinstance(event, SpeechStarted)
        kind = "ACTIVITY_START" if started else "ACTIVITY_END"
        offset = event.speech_end if isinstance(event, TurnEnded) else event.at
        self.put(VoiceActivityEvent(kind, duration(offset)))
        if self.vad_signals:
            signal = "VAD_SIGNAL_TYPE_SOS" if started else "VAD_SIGNAL_TYPE_EOS"
            self.put(VadSignal(signal))

    async def _finish_user_turn(self, user: UserTurn, speech_end: float | None) -> None:
        text, fragment = await user.final()
        self.milestone("final_transcript")
        if fragment or user.emitted:
            self.emit_input(fragment, finished=True)
        prepared, user.speculative_reply = user.speculative_reply, None
        unsure = user.transcript.unsure
        if text and self.user is None:
            logger.info("[%s] user: %s", self.id, text)
            if unsure:
                logger.info("[%s] unsure of what was heard (%.2f): asking again", self.id, user.transcript.confidence)
        matches = (
            prepared is not None
            and prepared.user_text == text
            and prepared.base_turns == len(self.conversation.turns)
        )
        self._perform(
            self.floor.heard(user, text, speech_end, unsure=unsure, prepared=prepared, prepared_matches=matches)
        )

    def _perform(self, effects: list[Effect[UserTurn, Reply]]) -> None:
        """Do what the floor's rules decided, in order (see ``floor``)."""
        for effect in effects:
            match effect:
                case Interrupt(reply):
                    self._interrupt(reply)
                case OpenTurn(at):
                    self.floor.user_opened(self._new_turn(at))
                case ContinueTurn(ended, withdraw):
                    withdrawn = withdraw and self._withdraw(ended.content)
                    if withdrawn:
                        logger.info("[%s] the user ran on: one utterance with the turn before", self.id)
                    self.floor.user_opened(ended.turn.continued(self._take_recent(), withdrawn))
                case FinishTurn(user, speech_end):
                    self.milestone("turn_end")
                    self.spawn(self._finish_user_turn(user, speech_end), "final-transcript")
                case CarryInto(user, text):
                    user.carried = text
                case CommitPrepared(reply):
                    self.conversation = reply.conversation
                    reply.commit()
                case DropPrepared(reply):
                    reply.stop()
                case AddToHistory(turns):
                    self.conversation.turns.extend(turns)
                case StartReply(turns, ask_again):
                    self.conversation.turns.extend(turns)
                    fixed = ASK_AGAIN if ask_again else None
                    self.floor.reply_started(Reply(self, self.conversation, committed=True, fixed=fixed))
                case KeepEnded(user, speech_end, text):
                    said = [turn for turn in self.conversation.turns if turn.role == "user" and turn.text() == text]
                    if said:
                        self.floor.keep_ended(user, speech_end, said[-1])
                case ReadAhead():
                    self.spawn(self._prepare_next_reply(), "chat-prefill")

    def _withdraw(self, content: Content) -> bool:
        """Take ``content`` (a turn the user ran on from) and all after it out of the history; False if not there."""
        turns = self.conversation.turns
        at = next((index for index, turn in enumerate(turns) if turn is content), None)
        if at is not None:
            del turns[at:]
        return at is not None

    def _take_recent(self) -> np.ndarray:
        """The audio heard before the user took the floor, and forget it."""
        recent = np.concatenate(list(self._recent)) if self._recent else np.zeros(0, dtype=np.float32)
        self._recent.clear()
        self._recent_s = 0.0
        return recent

    def _new_turn(self, at: float) -> UserTurn:
        """A turn for speech that started at ``at``, with what came just before it (``PREROLL_S``)."""
        recent = self._take_recent()
        window = SpeechWindow()
        keep = int((self._audio_s - at + PREROLL_S) * SAMPLE_RATE)
        window.append(recent[-keep:] if 0 < keep < len(recent) else recent)
        vocabulary = vocabulary_prompt(self.conversation.user_texts())
        return UserTurn(self, window, recogniser_prompt(vocabulary, self.conversation.last_text("model")))

    # -- replies ----------------------------------------------------------------------

    def prepare_reply(self, user_text: str) -> Reply | None:
        """A speculative reply to ``user_text``, held back until the turn really ends."""
        if not self.floor.may_prepare:
            return None
        conversation = Conversation(
            self.conversation.system_instruction,
            [*self.conversation.turns, Content(role="user", parts=[Part(text=user_text)])],
            self.conversation.tools,
            self.conversation.video,
        )
        return Reply(self, conversation, committed=False, user_text=user_text)

    def call_early(self, reply: Reply, calls: list[FunctionCall]) -> None:
        """Offer the calls of an uncommitted reply to the session, which runs the read-only ones now."""
        for call in calls:
            self._early_calls[call.id or ""] = reply
        self.put(EarlyToolCalls(calls))

    def drop_early_calls(self, ids: list[str]) -> None:
        """A dropped uncommitted reply had called early: the session forgets the calls; late answers are ignored."""
        self._dropped_calls.extend(ids)
        self.put(ToolCancellation(ids))

    def reply_finished(self, reply: Reply) -> None:
        self._early_calls = {call_id: r for call_id, r in self._early_calls.items() if r is not reply}
        self._perform(self.floor.reply_finished(reply))

    async def _prepare_next_reply(self) -> None:
        """While the reply plays and the user thinks, the chat model reads the conversation so far."""
        try:
            await self.dialogue.prepare(self.conversation)
        except Exception:  # the next reply reads its whole prompt itself, and reports what fails there
            logger.warning("[%s] the chat model could not read ahead", self.id, exc_info=True)

    def _interrupt(self, reply: Reply) -> None:
        """Barge-in: stop the reply and tell the client, in the order Gemini does."""
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
        self._perform(self.floor.client_turns(contents))

    def _on_tool_response(self, response: FunctionResponse) -> None:
        call_id = response.id or ""
        waiting = self._early_calls.pop(call_id, None) or self.reply
        if waiting is not None and waiting.waiting_for(call_id):
            waiting.deliver(response)
            return
        if call_id in self._dropped_calls:
            return  # an early call the user's going on made moot: it was never the model's call
        announcement = Content(role="user", parts=[Part(function_response=response)])
        self._perform(self.floor.announce(announcement, response.scheduling or "WHEN_IDLE"))

    def _on_context_change(self, update: ContextUpdate) -> None:
        if update.system_instruction is not None:
            self.conversation.system_instruction = update.system_instruction.text()
        if update.tools is not None:
            # the session appends the server's tools to the client's new list
            self.conversation.tools = [d for tool in update.tools for d in tool.function_declarations or []]
