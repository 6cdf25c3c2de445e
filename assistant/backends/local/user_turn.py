"""One turn of the user's speech: streaming decodes, the speculative final, and the final transcript.

A ``UserTurn`` collects the audio while the user holds the floor and
decodes it every ``PARTIAL_STEP_S`` (not before ``MIN_PARTIAL_WINDOW_S``),
sending newly agreed words as input-transcription fragments. When speech
pauses, the final decode starts at once (speculatively), with the
end-of-turn model's verdict beside it, and a speculative reply is prepared;
if the user carries on, both are thrown away unseen.

A turn that a short silence ended can be ``continued``: the user ran on
after the reply had started (a false cut-in), and the whole utterance is
decoded afresh over both turns' audio.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import numpy as np

from assistant.backends.local.asr import Heard, hear
from assistant.backends.local.transcript import (
    MIN_PARTIAL_WINDOW_S,
    SpeechWindow,
    StreamingTranscript,
    trim_window,
    words_after,
)
from assistant.backends.local.turn_model import sounds_finished

if TYPE_CHECKING:
    from assistant.backends.local.reply import Reply
    from assistant.backends.local.stream import LocalStream

PARTIAL_STEP_S = 0.5  # new audio between partial decodes


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
        self._earlier: str | None = None  # what the turn this one continues heard (see ``continued``)
        self._withdrawn = False

    @property
    def text(self) -> str:
        return self._answerable()

    def _answerable(self, tail: str = "") -> str:
        """What a reply answers: the words heard so far, and ``tail`` (a hypothesis not committed).

        A continuation whose earlier turn stays in the history answers only
        the words after that turn's.
        """
        heard = " ".join(filter(None, (self.transcript.text, tail.strip())))
        if self._earlier is not None and not self._withdrawn:
            heard = words_after(self._earlier, heard)
        return f"{self.carried}{heard}".strip()

    def continued(self, since: np.ndarray, withdrawn: bool) -> UserTurn:
        """The user ran on after this turn ended early: one utterance, decoded afresh over both turns' audio.

        The new turn's window is this turn's audio, then ``since`` (what came
        after it), decoded whole at the end, without partial decodes: heard
        alone, a short rest ("...and call it tea") was sometimes decoded as
        nothing and lost, and decoded after this turn's words as a forced
        prefix it came back as the whole sentence again. Only the words after
        this turn's are sent as input transcription. ``withdrawn``: this turn
        left the history, so a reply answers the whole utterance; otherwise
        only what the user said after it.
        """
        window = SpeechWindow()
        window.append(self.window.audio())
        window.append(since)
        window.trimmed_s = self.window.trimmed_s
        turn = UserTurn(self.session, window, self.transcript.context)
        turn._earlier = self.transcript.prefix
        turn._withdrawn = withdrawn
        if withdrawn:
            turn.carried = f"{self.carried}{''.join(self.transcript.context_words).strip()} "
        return turn

    def heard_audio(self) -> None:
        """New audio arrived: decode again once enough has accumulated."""
        if self.paused or self._partial is not None or self._speculation is not None or self._earlier is not None:
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
        self.session.milestone("pause_heard")
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
            text = self._answerable(hypothesis.text)
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
        if self._earlier is not None:
            fragment = words_after(self._earlier, fragment)  # the client has the earlier turn's words
        return self.text, fragment

    def cancel(self) -> None:
        for task in (self._partial, self._speculation):
            if task is not None:
                task.cancel()
        self.drop_speculative_reply()
