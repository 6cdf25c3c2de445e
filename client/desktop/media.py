"""The microphone and speaker of a talk session: sound devices, WAV files, or one of each.

Echo processing only makes sense when a real speaker can be heard by a real
microphone, so it is set up only when both ends are devices; the speaker's
``ReferenceTimeline`` then feeds the microphone's canceller.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audio.aec import EchoMode, create_echo_processor
from audio.devices import Microphone, Speaker, find_device, open_portaudio
from audio.files import WavMicrophone, WavSpeaker
from audio.playback import PlaybackBuffer

OnAudio = Callable[[bytes, float], None]


@dataclass
class AudioChoice:
    """What the command line asked for."""

    input_wav: Path | None = None
    output_wav: Path | None = None
    input_device: str | None = None
    output_device: str | None = None
    echo: EchoMode = EchoMode.AUTO


class AudioEnds:
    """Opens the chosen ends, starts them, and relays captured audio to ``listener``.

    ``listener`` is called with 16 kHz PCM and its level, on PortAudio's
    thread for a device and on the loop for a file.
    """

    def __init__(self, choice: AudioChoice) -> None:
        self.listener: OnAudio | None = None
        self._pa: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self.echo = "no echo path (file input or output)"
        self.microphone: Microphone | WavMicrophone
        self.speaker: Speaker | WavSpeaker
        try:
            if choice.input_wav is None or choice.output_wav is None:
                self._pa = open_portaudio()
            if choice.output_wav is not None:
                self.speaker = WavSpeaker(choice.output_wav)
            else:
                self.speaker = Speaker(self._pa, find_device(self._pa, choice.output_device, "output"))
            if choice.input_wav is not None:
                self.microphone = WavMicrophone(choice.input_wav, self._relay)
            else:
                device = find_device(self._pa, choice.input_device, "input")
                processor = reference = None
                if isinstance(self.speaker, Speaker):
                    processor = create_echo_processor(choice.echo)
                    reference = self.speaker.reference
                    self.echo = f"echo: {processor.name}" if processor is not None else "echo: off (headphones?)"
                self.microphone = Microphone(self._pa, device, self._relay, processor, reference)
        except BaseException:
            self.close()
            raise

    def _relay(self, pcm: bytes, level: float) -> None:
        if self.listener is not None:
            self.listener(pcm, level)

    @property
    def playback(self) -> PlaybackBuffer:
        return self.speaker.playback

    @property
    def input_finished(self) -> asyncio.Event | None:
        """Set when a WAV input has been played in full; None for a microphone."""
        return self.microphone.finished if isinstance(self.microphone, WavMicrophone) else None

    def start(self) -> None:
        for end in (self.speaker, self.microphone):
            if isinstance(end, (WavSpeaker, WavMicrophone)):
                self._tasks.append(asyncio.create_task(end.run(), name=f"audio-{type(end).__name__}"))
            else:
                end.start()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for name in ("microphone", "speaker"):
            end = getattr(self, name, None)
            if isinstance(end, (Microphone, Speaker, WavSpeaker)):
                end.close()
        if self._pa is not None:
            self._pa.terminate()
            self._pa = None
