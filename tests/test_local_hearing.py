"""What the local session does with what the recogniser heard: its vocabulary, and asking again when unsure.

A real ``LocalStream`` over the fakes of ``test_local_parity`` (a VAD that
hears loud samples as speech, a scripted dialogue), with recognisers that
say how sure they are and record the prompt they were given.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from google.genai import types

from assistant.backends.local.asr import Heard
from assistant.backends.local.conversation import Say
from assistant.backends.local.stream import LocalStream
from assistant.backends.local.transcript import ASK_AGAIN, ASK_AGAIN_BELOW
from assistant.protocol import AudioChunk, TextInput
from tests.test_local_parity import (
    HearsHello,
    LoudIsSpeech,
    ScriptedDialogue,
    as_sdk,
    executor,
    open_session,
    text_of,
    tone,
    until,
)

__all__ = ["executor"]  # the fixture this module uses from the parity tests


class HearsHelloThisSurely(HearsHello):
    """Hears " hello" with a fixed mean log-probability, and keeps every prompt it was given."""

    def __init__(self, logprob: float) -> None:
        self.logprob = logprob
        self.contexts: list[str] = []

    def hear(self, audio: np.ndarray, prefix: str = "", context: str = "") -> Heard:
        self.contexts.append(context)
        return Heard("" if prefix else " hello", self.logprob, 0.01)

    def transcribe(self, audio: np.ndarray, prefix: str = "", context: str = "") -> str:
        return self.hear(audio, prefix, context).text


async def speak(session: LocalStream) -> None:
    """A second of "speech" between quiet: one user turn."""
    for pcm in (tone(0.512, loud=False), tone(1.024, loud=True), tone(1.024, loud=False)):
        for start in range(0, len(pcm), 2048):
            await session.send(AudioChunk(pcm[start : start + 2048]))


async def test_an_utterance_the_recogniser_is_unsure_of_is_asked_again(executor: ThreadPoolExecutor) -> None:
    dialogue = ScriptedDialogue([[Say("Hello to you.")]])
    session = open_session(executor, dialogue, {}, LoudIsSpeech(), HearsHelloThisSurely(ASK_AGAIN_BELOW - 0.5))
    await speak(session)
    messages = await until(session)
    await session.close()
    assert text_of(messages) == ASK_AGAIN  # the mishearing's answer, prepared in the pause, was never sent
    done = as_sdk(messages[-1]).server_content
    assert done is not None and done.turn_complete
    assert done.turn_complete_reason == types.TurnCompleteReason.NEED_MORE_INPUT and done.waiting_for_input


async def test_an_utterance_heard_surely_is_answered(executor: ThreadPoolExecutor) -> None:
    dialogue = ScriptedDialogue([[Say("Hello to you.")]])
    session = open_session(executor, dialogue, {}, LoudIsSpeech(), HearsHelloThisSurely(ASK_AGAIN_BELOW + 0.5))
    await speak(session)
    messages = await until(session)
    await session.close()
    assert text_of(messages) == "Hello to you."


async def test_the_names_the_user_said_prompt_the_recogniser(
    executor: ThreadPoolExecutor,
) -> None:
    setup = {"tools": [{"functionDeclarations": [{"name": "set_timer"}]}]}
    recognizer = HearsHelloThisSurely(-0.2)
    dialogue = ScriptedDialogue([[Say("I'll remember that.")]])
    session = open_session(executor, dialogue, setup, LoudIsSpeech(), recognizer)
    await session.send(TextInput("Remember that my sister's name is Priya."))
    await until(session)
    await speak(session)
    await until(session)
    await session.close()
    assert recognizer.contexts and all(context == "Priya." for context in recognizer.contexts)
