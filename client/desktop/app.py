"""One conversation at the terminal: microphone and typed text in, speech and transcripts out.

``TalkApp`` runs four things at once on the event loop, none of which blocks
it (devices call back on PortAudio's threads and hop over with
``call_soon_threadsafe``):

- the sender: captured audio (echo already removed) to ``realtimeInput.audio``;
- the receiver: reply audio into the playback buffer, which is flushed the
  moment the server says ``interrupted``; transcripts, tool calls and turn
  ends to the view;
- the view, which also sends typed lines as ``realtimeInput.text``;
- a 10 Hz ticker: levels for the view, and the end of a ``--input`` run.

With a wake word (``WakeGate``), the microphone goes to the local detector
until the word is heard, and only then to the server, until the
conversation has been quiet for a while (see ``client.desktop.wake``).

Latency per turn is measured as the user feels it: from the last moment the
microphone heard speech (or a line was typed) to the moment the reply's
first audio went to the speaker.

Every timing here (the turn timer, the wake gate's window, the ``--input``
run's "no reply" timeout) reads one clock, ``TalkApp.now``: the event loop's
by default, the same clock the ticker's and the WAV ends' sleeps run on. It
is ``time.monotonic`` in a real session; in tests that run the loop on
virtual time (``tests/support/virtual_time.py``) a 60 s timeout passes in
milliseconds. (A sound device stamps ``PlaybackBuffer.started_at`` with
``time.monotonic`` on its own thread: the clock of a real loop.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from assistant.errors import AssistantError
from assistant.protocol import FunctionResponse, ServerMessage, Setup
from assistant.protocol.models import (
    AudioTranscriptionConfig,
    GenerationConfig,
    PrebuiltVoiceConfig,
    SpeechConfig,
    VoiceConfig,
)
from client.desktop.frames import FrameFeed
from client.desktop.live import LiveClient
from client.desktop.media import AudioEnds
from client.desktop.ui import TalkView
from client.desktop.wake import WakeGate

logger = logging.getLogger("client.desktop")

DEFAULT_MODEL = "gemini-live-2.5-flash"
SPEECH_DBFS = -45.0  # microphone level (after echo removal) that counts as the user speaking
INPUT_QUEUE_BLOCKS = 50  # one second of 20 ms blocks waiting to be sent before the oldest is dropped
QUIET_EXIT_S = 3.0  # with --input: leave once nothing has come for this long after the file ended
TICK_S = 0.1


@dataclass
class TalkSettings:
    """The conversation's settings from the command line."""

    model: str = DEFAULT_MODEL
    voice: str | None = None
    instructions: str | None = None
    until_reply: bool = False  # leave once the --input file has been answered
    reply_timeout_s: float = 60.0


class NoReply(AssistantError):
    """The backend did not answer the ``--input`` file in time."""


def build_setup(settings: TalkSettings) -> Setup:
    """A spoken conversation with transcripts of both sides."""
    speech = None
    if settings.voice:
        speech = SpeechConfig(
            voice_config=VoiceConfig(prebuilt_voice_config=PrebuiltVoiceConfig(voice_name=settings.voice))
        )
    return Setup(
        model=settings.model,
        generation_config=GenerationConfig(response_modalities=["AUDIO"], speech_config=speech),
        system_instruction=settings.instructions,  # type: ignore[arg-type]  # a string becomes a Content
        input_audio_transcription=AudioTranscriptionConfig(),
        output_audio_transcription=AudioTranscriptionConfig(),
    )


class TurnTimer:
    """From the end of what the user said or typed to the first reply audio heard (times on ``now``'s clock)."""

    def __init__(self, now: Callable[[], float]) -> None:
        self.now = now
        self.last_voice_at = 0.0
        self.last_text_at = 0.0
        self.user_done_at: float | None = None
        self.first_reply_at: float | None = None

    def reply_arrived(self) -> None:
        if self.first_reply_at is None:
            self.first_reply_at = self.now()
            self.user_done_at = max(self.last_voice_at, self.last_text_at) or None

    def latency_ms(self, first_sound_at: float | None) -> float | None:
        if self.user_done_at is None or self.first_reply_at is None:
            return None
        heard = first_sound_at if first_sound_at is not None and first_sound_at >= self.first_reply_at else None
        return ((heard or self.first_reply_at) - self.user_done_at) * 1000

    def reset(self) -> None:
        self.user_done_at = self.first_reply_at = None


class TalkApp:
    """Runs one conversation until the person leaves, the session ends, or a ``--input`` is answered."""

    def __init__(
        self,
        client: LiveClient,
        audio: AudioEnds,
        view: TalkView,
        settings: TalkSettings,
        frames: FrameFeed | None = None,
        wake: WakeGate | None = None,
        now: Callable[[], float] | None = None,
    ) -> None:
        """``now`` is the clock of every timing (default: the running loop's, which paces the ticker too)."""
        self.client = client
        self.audio = audio
        self.view = view
        self.settings = settings
        self.frames = frames
        self.wake = wake
        self.now = now if now is not None else asyncio.get_running_loop().time
        self.stop = asyncio.Event()
        self.timer = TurnTimer(self.now)
        self.dropped_blocks = 0
        self.turns = 0
        self._outbox: asyncio.Queue[bytes | None] = asyncio.Queue(INPUT_QUEUE_BLOCKS)  # None: audioStreamEnd
        self._level = -120.0
        self._interrupted = False
        self._turn_open = False
        self._turns_after_input = 0
        self._last_message_at = self.now()
        self._finished_at: float | None = None
        self._failure: BaseException | None = None

    # -- audio in -------------------------------------------------------------

    def _on_audio(self, loop: asyncio.AbstractEventLoop) -> None:
        def relay(pcm: bytes, level: float) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed while a device still called back
                loop.call_soon_threadsafe(self._audio_in, pcm, level)

        self.audio.listener = relay

    def _audio_in(self, pcm: bytes, level: float) -> None:
        self._level = level
        now = self.now()
        voiced = level > SPEECH_DBFS
        if self.wake is not None:
            asleep = not self.wake.awake
            send = self.wake.audio(pcm, voiced, now)
            if asleep and self.wake.awake:
                self._show_wake()
            if not send:
                return
        if voiced:
            self.timer.last_voice_at = now
        self._queue_audio(pcm)

    def _queue_audio(self, pcm: bytes | None) -> None:
        if self._outbox.full():
            self._outbox.get_nowait()
            self.dropped_blocks += 1
        self._outbox.put_nowait(pcm)

    async def _send_audio(self) -> None:
        while True:
            pcm = await self._outbox.get()
            if pcm is None:
                await self.client.send_audio_stream_end()
            else:
                await self.client.send_audio(pcm)

    def _show_wake(self) -> None:
        """The view's status line says whether the microphone is reaching the server."""
        assert self.wake is not None
        phrase = self.wake.detector.phrase
        if self.wake.awake:
            self.view.set_status(f"awake: heard {phrase!r}")
        else:
            self.view.set_status(f"waiting for {phrase!r}")

    def _check_wake(self) -> None:
        """Keep the gate awake while a reply plays; once it falls asleep, end the audio stream.

        An open turn alone does not keep it awake: a server that went quiet
        mid-turn must not keep the microphone streaming for ever.
        """
        assert self.wake is not None
        now = self.now()
        playback = self.audio.playback
        if playback.audible or playback.buffered_s > 0:
            self.wake.activity(now)
        if self.wake.tick(now):
            self._queue_audio(None)
            self._show_wake()
        if self.wake.awake:
            self.view.wake_state(f"awake {self.wake.seconds_left(now):.0f} s", True)
        else:
            self.view.wake_state("asleep", False)

    async def _send_frames(self) -> None:
        assert self.frames is not None
        async for jpeg in self.frames.jpegs():
            await self.client.send_image(jpeg)

    async def send_text(self, text: str) -> None:
        self.timer.last_text_at = self.now()
        self.view.user_typed(text)
        await self.client.send_text(text)

    # -- replies --------------------------------------------------------------

    async def _receive(self) -> None:
        async for message in self.client.messages():
            self._last_message_at = self.now()
            await self._handle(message)

    async def _handle(self, message: ServerMessage) -> None:
        content = message.server_content
        if self.wake is not None and (content is not None or message.tool_call is not None):
            self.wake.activity(self.now())
        if content is not None:
            if content.interrupted:
                dropped = self.audio.playback.flush()
                self._interrupted = True
                logger.info("interrupted: dropped %.2f s of queued reply audio", dropped)
            if content.input_transcription and content.input_transcription.text:
                self._turn_open = True
                self.view.user_said(content.input_transcription.text, bool(content.input_transcription.finished))
            if content.model_turn is not None:
                self._turn_open = True
                for part in content.model_turn.parts:
                    if part.inline_data is not None and part.inline_data.mime_type.startswith("audio/"):
                        self.timer.reply_arrived()
                        self.audio.playback.push(part.inline_data.data)
                    elif part.text and not part.thought:
                        self.timer.reply_arrived()
                        self.view.assistant_said(part.text)
            if content.output_transcription and content.output_transcription.text:
                self._turn_open = True
                self.timer.reply_arrived()
                self.view.assistant_said(content.output_transcription.text)
            if content.turn_complete:
                self._turn_over()
        if message.tool_call is not None:
            await self._refuse_tools(message)
        if message.tool_call_cancellation is not None:
            self.view.notice(f"tool calls cancelled: {', '.join(message.tool_call_cancellation.ids)}")
        if message.go_away is not None:
            self.view.notice(f"the server will close the session in {message.go_away.time_left or 'a moment'}")

    def _turn_over(self) -> None:
        self.audio.playback.end_of_turn()
        self.view.turn_over(self._interrupted, self.timer.latency_ms(self.audio.playback.started_at))
        self.turns += 1
        finished = self.audio.input_finished
        if finished is not None and finished.is_set():
            self._turns_after_input += 1
        self._interrupted = False
        self._turn_open = False
        self.timer.reset()

    async def _refuse_tools(self, message: ServerMessage) -> None:
        """Show each call; this client declares no functions, so any call sent here gets an error back."""
        assert message.tool_call is not None
        responses = []
        for call in message.tool_call.function_calls:
            self.view.tool_call(f"{call.name}({json.dumps(call.args, ensure_ascii=False)})")
            responses.append(
                FunctionResponse(id=call.id, name=call.name, response={"error": f"this client has no tool {call.name}"})
            )
        await self.client.send_tool_responses(responses)

    # -- the clock ------------------------------------------------------------

    async def _tick(self) -> None:
        while not self.stop.is_set():
            playback = self.audio.playback
            self.view.levels(self._level, self._level > SPEECH_DBFS, playback.audible or playback.buffered_s > 0)
            if self.wake is not None:
                self._check_wake()
            if self.settings.until_reply:
                self._check_answered()
            await asyncio.sleep(TICK_S)

    def _check_answered(self) -> None:
        """With ``--input``: stop once the file has been answered and the reply has played."""
        finished = self.audio.input_finished
        if finished is None or not finished.is_set():
            return
        now = self.now()
        if self._finished_at is None:
            self._finished_at = now
        quiet_since = max(self._finished_at, self._last_message_at)
        answered = self._turns_after_input > 0 or (self.turns > 0 and now - quiet_since > QUIET_EXIT_S)
        if answered and not self._turn_open and self.audio.playback.idle:
            self.stop.set()
        elif self.turns == 0 and now - self._finished_at > self.settings.reply_timeout_s:
            reason = f"no reply within {self.settings.reply_timeout_s:.0f} s of the end of the input"
            if self.wake is not None and self.wake.wakes == 0:
                reason = f"the wake word {self.wake.detector.phrase!r} was not heard in the input, so nothing was sent"
            self._failure = NoReply(reason)
            self.stop.set()

    # -- running --------------------------------------------------------------

    async def run(self) -> None:
        """Start the session and both audio ends, and run until done; raises what ended it badly."""
        loop = asyncio.get_running_loop()
        self.view.echo = self.audio.echo
        self.view.set_status("starting the session", busy=True)
        session_id = await self.client.start(build_setup(self.settings))
        self._on_audio(loop)
        self.audio.start()
        if self.wake is not None:  # said once the microphone is open: what is spoken from now on is heard
            self._show_wake()
        else:
            self.view.set_status(f"listening · session {session_id}" if session_id else "listening")
        workers = [
            asyncio.create_task(self._receive(), name="talk-receive"),
            asyncio.create_task(self._send_audio(), name="talk-send-audio"),
            asyncio.create_task(self._tick(), name="talk-tick"),
        ]
        if self.frames is not None:
            workers.append(asyncio.create_task(self._send_frames(), name="talk-frames"))
        view = asyncio.create_task(self.view.run(self.send_text, self.stop), name="talk-view")
        stopped = asyncio.create_task(self.stop.wait())
        try:
            done, _ = await asyncio.wait([*workers, view, stopped], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopped and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            if self._failure is not None:
                raise self._failure
        finally:
            self.stop.set()
            for task in [*workers, stopped]:
                task.cancel()
            await asyncio.gather(*workers, stopped, return_exceptions=True)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(view, 1.0)
            await self.audio.stop()
            if self.dropped_blocks:
                logger.warning("dropped %d microphone blocks while the connection lagged", self.dropped_blocks)
