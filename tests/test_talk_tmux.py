"""The terminal UI, driven as a person would: in tmux, keys in, screen read back."""

from __future__ import annotations

import asyncio
import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from assistant.protocol import ServerMessage, TextInput
from audio.pcm import read_wav, write_wav
from tests.conftest import ServerFactory
from tests.support.scripted import ScriptedBackend, ScriptedSession
from tests.support.talking import Listener, reply_messages, spoken_wav

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
QUESTION = "what time is it"
ANSWER = "It is twelve o'clock noon."
TYPED = "tell me a joke"
JOKE = "I would tell you a UDP joke, but you might not get it."


class Tmux:
    """A private tmux server (its own socket), killed at the end."""

    def __init__(self) -> None:
        if shutil.which("tmux") is None:
            pytest.fail("tmux is missing; run `make test` (scripts/debian-test.txt)")
        self.socket = f"talk-test-{uuid.uuid4().hex[:8]}"

    def __call__(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True)
        return done.stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "talk")

    async def wait_for(self, *texts: str, timeout: float = 30.0) -> str:
        screen = ""
        try:
            async with asyncio.timeout(timeout):
                while not all(text in (screen := self.screen()) for text in texts):
                    await asyncio.sleep(0.2)
        except TimeoutError:
            raise AssertionError(f"{texts} not on screen after {timeout:.0f} s:\n{screen}") from None
        return screen

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


async def test_the_terminal_ui_shows_a_spoken_turn_and_sends_typed_text(
    live_server: ServerFactory, tmp_path: Path
) -> None:
    question = spoken_wav(tmp_path, "question.wav", QUESTION)
    answer = read_wav(spoken_wav(tmp_path, "answer.wav", ANSWER, rate=24_000), 24_000)

    async def script(s: ScriptedSession) -> None:
        await Listener(s).utterance()
        s.emit(ServerMessage.input_transcript(QUESTION, finished=True), *reply_messages(answer, ANSWER))
        typed = await s.expect(TextInput, timeout=60)
        assert typed.text == TYPED
        s.emit(ServerMessage.output_transcript(JOKE), ServerMessage.turn_done())
        await s.closed.wait()

    backend = ScriptedBackend(script)
    tmux = Tmux()
    try:
        async with live_server(backend) as server:
            command = shlex.join(
                [
                    sys.executable, "-m", "assistant", "talk", "--connect", server.live_url,
                    "--input", str(question), "--output", str(tmp_path / "reply.wav"),
                ]
            )  # fmt: skip
            command += "; echo talk exited with $?"
            tmux("new-session", "-d", "-s", "talk", "-x", "110", "-y", "32", "-c", str(REPO), command)
            tmux("set-option", "-t", "talk", "remain-on-exit", "on")
            screen = await tmux.wait_for(f"you: {QUESTION}", f"assistant: {ANSWER}", "turn 1 done", "ms to first reply")
            assert "mic " in screen and "dBFS" in screen, "the microphone level is shown"
            tmux("send-keys", "-t", "talk", TYPED, "Enter")
            await tmux.wait_for(f"you: {TYPED} (typed)", f"assistant: {JOKE}", "turn 2 done")
            assert "○ assistant" in await tmux.wait_for("○ assistant"), "the reply is over: nobody is speaking"
            tmux("send-keys", "-t", "talk", "/quit", "Enter")
            await tmux.wait_for("talk exited with 0", timeout=15)
        backend.check()
    finally:
        tmux.kill()


async def test_the_terminal_ui_shows_the_wake_word_state(live_server: ServerFactory, tmp_path: Path) -> None:
    question = read_wav(spoken_wav(tmp_path, "question.wav", QUESTION), 16_000)
    word = read_wav(spoken_wav(tmp_path, "word.wav", "Okay Nabu"), 16_000)
    said = tmp_path / "said.wav"
    write_wav(said, bytes(64_000) + word + bytes(16_000) + question, 16_000)  # two quiet seconds, then the word
    answer = read_wav(spoken_wav(tmp_path, "answer.wav", ANSWER, rate=24_000), 24_000)

    async def script(s: ScriptedSession) -> None:
        await Listener(s).utterance()
        s.emit(ServerMessage.input_transcript(QUESTION, finished=True), *reply_messages(answer, ANSWER))
        await s.closed.wait()

    backend = ScriptedBackend(script)
    tmux = Tmux()
    try:
        async with live_server(backend) as server:
            command = shlex.join(
                [
                    sys.executable, "-m", "assistant", "talk", "--connect", server.live_url, "--wake-word", "okay_nabu",
                    "--input", str(said), "--output", str(tmp_path / "reply.wav"),
                ]
            )  # fmt: skip
            tmux("new-session", "-d", "-s", "talk", "-x", "110", "-y", "32", "-c", str(REPO), command + "; sleep 60")
            await tmux.wait_for("waiting for 'Okay Nabu'", "◌ asleep")
            await tmux.wait_for("awake: heard 'Okay Nabu'", "◉ awake ")
            await tmux.wait_for(f"you: {QUESTION}", f"assistant: {ANSWER}", "turn 1 done")
            # Five quiet seconds after the reply, it waits for the word again.
            await tmux.wait_for("waiting for 'Okay Nabu'", "◌ asleep", f"assistant: {ANSWER}", timeout=20)
            tmux("send-keys", "-t", "talk", "/quit", "Enter")
        backend.check()
    finally:
        tmux.kill()
