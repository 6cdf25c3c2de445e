"""The local backend's Live signals: usageMetadata, voiceActivity, turnCompleteReason and NON_BLOCKING scheduling.

A real ``LocalStream`` with its real turn-taking, fed by fakes for the
models (a scripted dialogue, a VAD that hears loud samples as speech, a
recogniser with a fixed transcript), so each rule is checked in well under a
second. The messages a check is about are encoded to the wire and read by the
google-genai SDK's own converter, as a client would see them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from google.genai import types

from assistant.backends.local import reply as local_reply
from assistant.backends.local.conversation import CallTools, Conversation, DialogueEvent, Say
from assistant.backends.local.dialogue import ModelDialogue
from assistant.backends.local.llm import (
    ChatEvent,
    ChatMessage,
    GenerationSettings,
    TextDelta,
    TokenUsage,
    ToolCalls,
    ToolSpec,
)
from assistant.backends.local.stream import LocalStream, SessionParts
from assistant.backends.local.tts import Synthesizer, Voices
from assistant.backends.local.turn_model import TurnModel
from assistant.protocol import (
    AudioChunk,
    Content,
    EarlyToolCalls,
    FunctionCall,
    FunctionResponse,
    ServerMessage,
    Setup,
    TextInput,
    ToolResponses,
    decode_server_message,
    encode_event,
    encode_message,
    parse_client_message,
)
from assistant.protocol.models import Scheduling
from assistant.session import SessionRequest
from tests.support.virtual_time import virtual_time
from tests.test_sdk_corpus import sdk_reads

FRAME_SAMPLES = 512  # Silero's frame at 16 kHz
Script = list[DialogueEvent]


class ScriptedDialogue:
    """Answers each user turn with the next script, the model's own call's result with ``after_call``, and
    a late tool response (an announcement) with ``result <response>``.

    The last script answers every later turn too: the session may ask early, speculatively, and again
    when the turn has ended. ``hold`` (when set) keeps a script from finishing until the test releases
    it: a reply in progress.
    """

    def __init__(self, scripts: list[Script], after_call: Script | None = None) -> None:
        self.scripts = scripts
        self.after_call = after_call if after_call is not None else [Say("done. ")]
        self.hold: asyncio.Event | None = None
        self.seen: list[Conversation] = []
        self.read_ahead: list[list[Content]] = []  # the turns each prepare() was given, as they were then

    async def respond(self, conversation: Conversation, settings: GenerationSettings) -> AsyncIterator[DialogueEvent]:
        self.seen.append(Conversation(conversation.system_instruction, list(conversation.turns), conversation.tools))
        responses = conversation.pending_responses()
        turns = conversation.turns
        if responses and len(turns) >= 2 and any(part.function_call for part in turns[-2].parts):
            for event in self.after_call:
                yield event
            return
        for response in responses:
            yield Say(f"result {json.dumps(response.response, sort_keys=True)}. ")
        if responses:
            return
        for event in self.scripts.pop(0) if len(self.scripts) > 1 else self.scripts[0]:
            yield event
        if self.hold is not None:
            await self.hold.wait()

    async def sounds_complete(self, text: str, declared: set[str]) -> bool:
        return False

    async def prepare(self, conversation: Conversation) -> None:
        self.read_ahead.append(list(conversation.turns))


class LoudIsSpeech:
    """A VAD: a 32 ms frame whose samples are loud is speech. ``heard`` keeps every byte it was given."""

    frame_seconds = FRAME_SAMPLES / 16_000

    def __init__(self) -> None:
        self._pending = np.zeros(0, dtype=np.int16)
        self.heard = bytearray()

    def process(self, pcm: bytes) -> list[float]:
        self.heard += pcm
        self._pending = np.concatenate([self._pending, np.frombuffer(pcm, dtype="<i2")])
        frames = len(self._pending) // FRAME_SAMPLES
        chunks = [self._pending[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES] for i in range(frames)]
        self._pending = self._pending[frames * FRAME_SAMPLES :]
        return [0.95 if np.abs(chunk).mean() > 1000 else 0.01 for chunk in chunks]


class HearsHello:
    def transcribe(self, audio: np.ndarray, prefix: str = "", context: str = "") -> str:
        return " hello"

    def word_ends(self, audio: np.ndarray, text: str, context: str = "") -> list[float]:
        return []


class HearsNothing(HearsHello):
    """A recogniser that finds no words: the sound was a noise."""

    def transcribe(self, audio: np.ndarray, prefix: str = "", context: str = "") -> str:
        return ""


class SilentVoice:
    name = "silent"
    sample_rate = 22_050


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(1) as pool:
        yield pool


def open_session(
    executor: ThreadPoolExecutor,
    dialogue: ScriptedDialogue,
    setup: Mapping[str, object],
    vad: LoudIsSpeech | None = None,
    recognizer: HearsHello | None = None,
    turn_model: TurnModel | None = None,
    *,
    voice: Synthesizer | None = None,
    clock: Callable[[], float] = lambda: 0.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> LocalStream:
    """A local session over fakes; ``vad`` is None for manual turn-taking (as ``LocalBackend.open`` does).

    ``voice`` speaks replies when the setup asks for audio; ``clock`` and
    ``sleep`` time their pacing (the loop's, for a test on virtual time).
    """
    parts = SessionParts(
        recognizer=recognizer or HearsHello(),
        asr_executor=executor,
        tts_executor=executor,
        voices=Voices(voice or SilentVoice(), []),  # type: ignore[arg-type]
        new_dialogue=lambda: dialogue,
        new_vad=LoudIsSpeech,  # type: ignore[arg-type]
        default_silence_ms=300,
        eager_end_ms=200,
        clock=clock,
        sleep=sleep,
        turn_model=turn_model,
        agreed_end_ms=100,
    )
    wire = {"setup": {"model": "local", "generationConfig": {"responseModalities": ["TEXT"]}, **setup}}
    parsed: Setup | None = parse_client_message(json.dumps(wire)).setup
    assert parsed is not None
    return LocalStream(parts, SessionRequest(session_id="s", setup=parsed), vad)  # type: ignore[arg-type]


def as_sdk(message: ServerMessage) -> types.LiveServerMessage:
    """The message as the google-genai SDK reads it off the wire."""
    return sdk_reads(encode_message(message))


async def until(
    session: LocalStream, done: Callable[[ServerMessage], bool] = lambda m: m.is_turn_complete, timeout: float = 3.0
) -> list[ServerMessage]:
    """The session's events, as a client reads them off the wire, up to and including the first that is ``done``."""
    messages: list[ServerMessage] = []

    async def collect() -> None:
        async for event in session.receive():
            if isinstance(event, EarlyToolCalls):
                continue  # between the backend and its session (test_local_early_calls); never the client's
            message = decode_server_message(encode_event(event))
            messages.append(message)
            if done(message):
                return

    await asyncio.wait_for(collect(), timeout)
    return messages


def text_of(messages: list[ServerMessage]) -> str:
    return "".join(
        part.text or ""
        for m in messages
        if m.server_content and m.server_content.model_turn
        for part in m.server_content.model_turn.parts
    )


async def test_a_turn_reports_the_chat_models_tokens_over_all_its_steps(executor: ThreadPoolExecutor) -> None:
    call = FunctionCall(id="c1", name="lookup", args={})
    dialogue = ScriptedDialogue(
        [[Say("Let me look. "), TokenUsage(26, 6), CallTools([call]), TokenUsage(0, 9)]],
        after_call=[Say("It is one."), TokenUsage(44, 4)],
    )
    session = open_session(executor, dialogue, {"tools": [{"functionDeclarations": [{"name": "lookup"}]}]})
    await session.send(TextInput("look it up"))
    called = await until(session, lambda m: m.tool_call is not None)
    await session.send(ToolResponses([FunctionResponse(id="c1", name="lookup", response={"output": 1})]))
    messages = called + await until(session)
    await session.close()
    assert text_of(messages) == "Let me look. It is one."
    assert all(m.usage_metadata is None for m in messages[:-1])
    usage = as_sdk(messages[-1]).usage_metadata
    assert usage is not None and messages[-1].is_turn_complete
    assert (usage.prompt_token_count, usage.response_token_count, usage.total_token_count) == (70, 19, 89)


async def test_a_turn_without_the_chat_model_reports_no_usage(executor: ThreadPoolExecutor) -> None:
    session = open_session(executor, ScriptedDialogue([[Say("It is noon.")]]), {})
    await session.send(TextInput("what time is it"))
    messages = await until(session)
    await session.close()
    assert text_of(messages) == "It is noon." and messages[-1].usage_metadata is None


async def test_a_question_back_ends_the_turn_waiting_for_input(executor: ThreadPoolExecutor) -> None:
    dialogue = ScriptedDialogue([[Say("For how long?", ends_turn="NEED_MORE_INPUT")], [Say("Done.")]])
    session = open_session(executor, dialogue, {})
    await session.send(TextInput("set a timer"))
    asked = as_sdk((await until(session))[-1]).server_content
    await session.send(TextInput("ten minutes"))
    answered = as_sdk((await until(session))[-1]).server_content
    await session.close()
    assert asked is not None and asked.turn_complete
    assert asked.turn_complete_reason == types.TurnCompleteReason.NEED_MORE_INPUT and asked.waiting_for_input
    assert answered is not None and answered.turn_complete
    assert answered.turn_complete_reason is None and answered.waiting_for_input is None


class MisCallingChat:
    """A chat model that asks for a tool with arguments its schema refuses, as a small model may."""

    name = "mis-calling"

    async def stream(
        self, messages: list[ChatMessage], tools: list[ToolSpec], settings: GenerationSettings
    ) -> AsyncIterator[ChatEvent]:
        yield TextDelta("")
        yield ToolCalls([], invalid=[("lookup", "seconds must be a number")])
        yield TokenUsage(31, 12)

    async def prefill(self, messages: list[ChatMessage], tools: list[ToolSpec]) -> None:
        """It keeps no context to read into."""


async def test_a_call_the_model_got_wrong_ends_the_turn_as_malformed(executor: ThreadPoolExecutor) -> None:
    session = open_session(executor, ScriptedDialogue([]), {"tools": [{"functionDeclarations": [{"name": "lookup"}]}]})
    session.dialogue = ModelDialogue(MisCallingChat())
    await session.send(TextInput("look it up"))
    messages = await until(session)
    await session.close()
    assert text_of(messages) == "Sorry, I couldn't use lookup: seconds must be a number. "
    done = as_sdk(messages[-1])
    assert done.server_content is not None and done.server_content.turn_complete
    assert done.server_content.turn_complete_reason == types.TurnCompleteReason.MALFORMED_FUNCTION_CALL
    assert not done.server_content.waiting_for_input
    assert done.usage_metadata is not None and done.usage_metadata.total_token_count == 43


def tone(seconds: float, loud: bool) -> bytes:
    samples = int(seconds * 16_000)
    level = 8000 if loud else 0
    return (np.sign(np.sin(np.arange(samples) * 0.3)) * level).astype("<i2").tobytes()


@pytest.mark.parametrize("explicit", [False, True])
async def test_the_vad_reports_voice_activity_with_its_audio_offsets(
    executor: ThreadPoolExecutor, explicit: bool
) -> None:
    dialogue = ScriptedDialogue([[Say("Hi.")]])
    setup = {"explicitVadSignal": True} if explicit else {}
    session = open_session(executor, dialogue, setup, LoudIsSpeech())
    for pcm in (tone(0.512, loud=False), tone(1.024, loud=True), tone(1.024, loud=False)):
        for start in range(0, len(pcm), 2048):
            await session.send(AudioChunk(pcm[start : start + 2048]))
    messages = await until(session)
    await session.close()
    activity = [as_sdk(m).voice_activity for m in messages if m.voice_activity]
    assert [(a.voice_activity_type, a.audio_offset) for a in activity if a] == [
        (types.VoiceActivityType.ACTIVITY_START, "0.512s"),
        (types.VoiceActivityType.ACTIVITY_END, "1.536s"),
    ]
    signals = [as_sdk(m).voice_activity_detection_signal for m in messages if m.voice_activity_detection_signal]
    expected = [types.VadSignalType.VAD_SIGNAL_TYPE_SOS, types.VadSignalType.VAD_SIGNAL_TYPE_EOS]
    assert [s.vad_signal_type for s in signals if s] == (expected if explicit else [])
    assert text_of(messages) == "Hi." and messages[-1].is_turn_complete
    kinds = ["start" if m.voice_activity else "reply" for m in messages if m.voice_activity or m.server_content]
    assert kinds.index("reply") > 1  # the end of activity comes before the reply


class SoundsComplete(ScriptedDialogue):
    """Every transcript is a complete request."""

    async def sounds_complete(self, text: str, declared: set[str]) -> bool:
        return True


class FixedVerdict:
    """An end-of-turn model that always gives ``probability``, and counts its calls."""

    name = "fixed"

    def __init__(self, probability: float) -> None:
        self.value = probability
        self.calls = 0

    def probability(self, audio: np.ndarray) -> float:
        self.calls += 1
        return self.value


@pytest.mark.parametrize(
    ("voice", "silence_ms"),
    [(0.9, 128), (0.1, 224)],  # the first 32 ms frame past the agreed 100 ms, or past the eager 200 ms
)
async def test_a_finished_voice_ends_a_complete_request_sooner(
    executor: ThreadPoolExecutor, voice: float, silence_ms: int
) -> None:
    model = FixedVerdict(voice)
    session = open_session(executor, SoundsComplete([[Say("Hi.")]]), {}, LoudIsSpeech(), turn_model=model)
    await session.send(AudioChunk(tone(1.024, loud=True)))
    frame = tone(0.032, loud=False)
    await session.send(AudioChunk(frame))  # the pause begins: transcript, words, voice, speculative reply
    for _ in range(300):
        if session.user is None or session.user.speculative_reply is not None:
            break
        await asyncio.sleep(0.01)
    quiet = 1
    while session.detector.user_active:
        await session.send(AudioChunk(frame))
        quiet += 1
    await until(session)
    await session.close()
    assert model.calls == 1
    assert quiet * 32 == silence_ms


# -- NON_BLOCKING scheduling -------------------------------------------------------------

SLOW = {"tools": [{"functionDeclarations": [{"name": "slow", "behavior": "NON_BLOCKING"}]}]}


async def started_background_call(
    executor: ThreadPoolExecutor, then: list[Script]
) -> tuple[LocalStream, ScriptedDialogue]:
    """A session whose first turn called ``slow`` (NON_BLOCKING) and ended, a second later, without its answer.

    The tests that use it run on virtual time: the grace second, and the
    seconds they wait for nothing to happen, take no real time.
    """
    call = FunctionCall(id="bg", name="slow", args={})
    dialogue = ScriptedDialogue([[Say("Started. "), CallTools([call])], *then])
    session = open_session(executor, dialogue, SLOW)
    await session.send(TextInput("start it"))
    first = await until(session)
    assert text_of(first) == "Started. " and any(m.tool_call for m in first)
    return session, dialogue


def late_answer(scheduling: Scheduling) -> ToolResponses:
    return ToolResponses([FunctionResponse(id="bg", name="slow", response={"output": 7}, scheduling=scheduling)])


async def quiet_for(session: LocalStream, seconds: float) -> list[ServerMessage]:
    """What the session sends within ``seconds`` (nothing, when it is quiet)."""
    try:
        return await until(session, lambda m: True, timeout=seconds)
    except TimeoutError:
        return []


@virtual_time
async def test_silent_absorbs_the_result_without_speaking(executor: ThreadPoolExecutor) -> None:
    session, dialogue = await started_background_call(executor, [[Say("Seven, I see.")]])
    await session.send(late_answer("SILENT"))
    assert await quiet_for(session, 5.0) == []
    await session.send(TextInput("what came back?"))
    reply = await until(session)
    await session.close()
    assert text_of(reply) == "Seven, I see."
    [absorbed] = [p.function_response for t in dialogue.seen[-1].turns for p in t.parts if p.function_response]
    assert absorbed is not None and absorbed.id == "bg" and absorbed.response == {"output": 7}


@virtual_time
async def test_when_idle_waits_for_the_reply_in_progress_then_speaks(executor: ThreadPoolExecutor) -> None:
    session, dialogue = await started_background_call(executor, [[Say("Let me tell you a story.")]])
    dialogue.hold = asyncio.Event()
    await session.send(TextInput("tell me a story"))
    story = await until(session, lambda m: bool(text_of([m])))
    await session.send(late_answer("WHEN_IDLE"))
    assert await quiet_for(session, 5.0) == []  # the story goes on, nothing interrupts it
    dialogue.hold.set()
    story += await until(session)
    announced = await until(session)
    await session.close()
    assert not any(m.is_interrupted for m in story) and text_of(story) == "Let me tell you a story."
    assert text_of(announced) == 'result {"output": 7}. ' and announced[-1].is_turn_complete


@virtual_time
async def test_interrupt_stops_the_reply_in_progress_and_speaks_now(executor: ThreadPoolExecutor) -> None:
    session, dialogue = await started_background_call(executor, [[Say("Let me tell you a story.")]])
    dialogue.hold = asyncio.Event()  # never set: only the interruption ends the story
    await session.send(TextInput("tell me a story"))
    story = await until(session, lambda m: bool(text_of([m])))
    dialogue.hold = None
    await session.send(late_answer("INTERRUPT"))
    cut = await until(session)
    announced = await until(session)
    await session.close()
    assert text_of(story) == "Let me tell you a story."
    assert [m.is_interrupted for m in cut] == [True, False] and cut[-1].is_turn_complete
    assert text_of(announced) == 'result {"output": 7}. ' and announced[-1].is_turn_complete


async def test_a_noise_that_held_the_floor_lets_a_waiting_announcement_go(
    executor: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sound with no words in it opens a user turn; what waited for the floor (an alarm) is spoken after it."""
    monkeypatch.setattr(local_reply, "NON_BLOCKING_GRACE_S", 0.05)
    call = FunctionCall(id="bg", name="slow", args={})
    dialogue = ScriptedDialogue([[Say("Started. "), CallTools([call])]], after_call=[Say("The alarm rang. ")])
    session = open_session(executor, dialogue, SLOW, LoudIsSpeech(), recognizer=HearsNothing())
    await session.send(TextInput("start it"))
    assert text_of(await until(session)) == "Started. "
    noise = tone(1.024, loud=True)
    for start in range(0, len(noise), 2048):
        await session.send(AudioChunk(noise[start : start + 2048]))  # the floor is the user's
    await session.send(late_answer("WHEN_IDLE"))
    quiet = tone(1.024, loud=False)
    for start in range(0, len(quiet), 2048):
        await session.send(AudioChunk(quiet[start : start + 2048]))  # the turn ends, with no words in it
    announced = await until(session)
    await session.close()
    assert text_of(announced) == "The alarm rang. " and announced[-1].is_turn_complete


async def test_once_a_reply_is_done_the_dialogue_reads_the_conversation_ahead_of_the_next(
    executor: ThreadPoolExecutor,
) -> None:
    dialogue = ScriptedDialogue([[Say("Hi.")]])
    session = open_session(executor, dialogue, {})
    await session.send(TextInput("hello"))
    await until(session)
    for _ in range(10):  # the read-ahead is a task of its own, started as the reply ends
        await asyncio.sleep(0)
    await session.close()
    assert [[(turn.role, turn.text()) for turn in turns] for turns in dialogue.read_ahead] == [
        [("user", "hello"), ("model", "Hi.")]
    ]
