"""A user who runs on after a turn a short silence ended: one utterance, no words lost.

"Set a timer for five minutes ... and call it tea": the first half sounds
complete, so a shortened silence ends the turn and the reply starts; then
the user goes on. The whole sentence is decoded afresh over both halves'
audio (alone, a short rest was sometimes heard as nothing), and the reply
to half the sentence gives way to a reply to all of it, unless it already
called a tool.

A real ``LocalStream`` over the fakes of ``test_local_parity``: a VAD that
hears loud samples as speech, a scripted dialogue whose every transcript
sounds complete (the turn ends after 200 ms of silence, where 300 ms is the
default), and a recogniser that hears the second half only with the first.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from assistant.backends.local.conversation import CallTools, Say
from assistant.backends.local.stream import LocalStream
from assistant.protocol import AudioChunk, FunctionCall, ServerMessage
from tests.test_local_parity import (
    FRAME_SAMPLES,
    HearsHello,
    LoudIsSpeech,
    Script,
    SoundsComplete,
    executor,
    open_session,
    text_of,
    tone,
    until,
)

__all__ = ["executor"]  # the fixture this module uses from the parity tests

FRAME_S = FRAME_SAMPLES / 16_000
SETUP = {
    "inputAudioTranscription": {},
    "tools": [{"functionDeclarations": [{"name": "set_timer"}]}],
}


WHOLE_S = 1.2  # a window this long holds both halves


class HearsTheWholeSentence(HearsHello):
    """Hears "Set a timer." in the first half's audio and the whole sentence in both halves'; keeps each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str]] = []  # (seconds of audio, prefix)

    def transcribe(self, audio: np.ndarray, prefix: str = "", context: str = "") -> str:
        seconds = len(audio) / 16_000
        self.calls.append((seconds, prefix))
        return " Set a timer and call it tea." if seconds > WHOLE_S else " Set a timer."


async def say(session: LocalStream, seconds: float) -> None:
    """Speech for ``seconds``, then the pause until the turn ends (after its speculative reply is ready)."""
    speech = tone(seconds, loud=True)
    for start in range(0, len(speech), 2 * FRAME_SAMPLES):
        await session.send(AudioChunk(speech[start : start + 2 * FRAME_SAMPLES]))
    quiet = tone(FRAME_S, loud=False)
    while session.user is not None and not session.user.paused:
        await session.send(AudioChunk(quiet))
    for _ in range(300):  # the pause's transcript, its verdict and the speculative reply, in real time
        if session.user is None or session.user.speculative_reply is not None:
            break
        await asyncio.sleep(0.01)
    while session.detector.user_active:
        await session.send(AudioChunk(quiet))


async def run_on(
    executor: ThreadPoolExecutor, first: Script, pause_frames: int
) -> tuple[LocalStream, SoundsComplete, list[ServerMessage]]:
    """Say the first half, let its reply start, pause ``pause_frames`` more, say the rest; the messages to the end.

    The reply to the first half is still in progress when the user goes on:
    held by the test, or waiting for the answer to its call.
    """
    dialogue = SoundsComplete([first, [Say("Timer tea is set.")]])
    if not any(isinstance(event, CallTools) for event in first):
        dialogue.hold = asyncio.Event()
    recognizer = HearsTheWholeSentence()
    session = open_session(executor, dialogue, SETUP, LoudIsSpeech(), recognizer)
    await say(session, 0.6)
    messages = await until(session, lambda m: bool(text_of([m])))
    dialogue.hold = None
    for _ in range(pause_frames):
        await session.send(AudioChunk(tone(FRAME_S, loud=False)))
    await say(session, 0.5)
    messages += await until(session, lambda m: text_of([m]) == "Timer tea is set.")
    messages += await until(session)
    await session.close()
    return session, dialogue, messages


def user_turns(dialogue: SoundsComplete) -> list[str]:
    """The user's words in the conversation the dialogue last answered."""
    return [turn.text() for turn in dialogue.seen[-1].turns if turn.role == "user" and turn.text()]


def heard(messages: list[ServerMessage]) -> list[tuple[str, bool]]:
    return [
        (m.server_content.input_transcription.text or "", bool(m.server_content.input_transcription.finished))
        for m in messages
        if m.server_content and m.server_content.input_transcription
    ]


async def test_the_rest_after_a_hesitation_is_one_utterance_with_the_start(executor: ThreadPoolExecutor) -> None:
    session, dialogue, messages = await run_on(executor, [Say("Which timer?")], pause_frames=0)
    assert any(m.is_interrupted for m in messages)  # the reply to half the sentence was cut
    assert user_turns(dialogue) == ["Set a timer and call it tea."]  # the half left the history
    assert heard(messages) == [("Set a timer.", True), (" and call it tea.", True)]  # the client's words, once
    seconds, prefix = session.parts.recognizer.calls[-1]  # type: ignore[attr-defined]
    assert seconds > WHOLE_S and prefix == ""  # decoded whole, afresh


async def test_a_reply_that_called_a_tool_keeps_its_turn_and_the_rest_is_its_own(
    executor: ThreadPoolExecutor,
) -> None:
    call = FunctionCall(id="t1", name="set_timer", args={})
    _, dialogue, messages = await run_on(executor, [Say("Setting it. "), CallTools([call])], pause_frames=0)
    cancelled = [m.tool_call_cancellation for m in messages if m.tool_call_cancellation]
    assert cancelled and cancelled[0].ids == ["t1"]  # the client is told, as on any barge-in
    assert user_turns(dialogue) == ["Set a timer.", "and call it tea."]


async def test_speech_after_the_default_silence_is_a_new_turn(executor: ThreadPoolExecutor) -> None:
    session, dialogue, _ = await run_on(executor, [Say("Which timer?")], pause_frames=4)  # 224 + 128 ms > 300
    assert user_turns(dialogue) == ["Set a timer.", "Set a timer."]  # the second half's own audio only
    assert all(seconds < WHOLE_S for seconds, _ in session.parts.recognizer.calls)  # type: ignore[attr-defined]
