"""Microphone and speaker through PyAudio (PortAudio), with echo processing between them.

Both streams run in PortAudio's callback mode, on PortAudio's own threads, so
the asyncio loop never blocks on a device. The speaker callback pulls from a
``PlaybackBuffer`` and records what it played, with the time it will sound,
in a ``ReferenceTimeline``; the microphone callback pairs each 10 ms frame
with the reference playing at its capture time and runs the echo processor.
The processed 16 kHz audio goes to ``on_audio`` (still on PortAudio's thread:
the caller hops to its loop).

Failures a person can fix are raised as ``AudioDeviceError`` subclasses whose
message says what to do: PortAudio missing (with the install command), no
such device, the device busy.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from assistant.errors import AssistantError
from audio.aec import AEC_RATE, FRAME_SAMPLES, EchoProcessor
from audio.alignment import EchoAligner
from audio.pcm import SAMPLE_WIDTH, FrameSplitter, level_dbfs, samples_of
from audio.playback import REPLY_RATE, PlaybackBuffer, ReferenceTimeline
from audio.resample import StreamResampler

logger = logging.getLogger("audio.devices")

Direction = Literal["input", "output"]
# Microphone blocks are short (they go out as 20 ms messages); speaker blocks are longer,
# so that a busy machine does not starve the output (every underrun moves the echo).
BLOCK_MS = {"input": 20, "output": 80}
PORTAUDIO_HINT = (
    "install it with: sudo apt-get install libportaudio2 portaudio19-dev && pip install --force-reinstall pyaudio "
    "(Debian/Ubuntu), or brew install portaudio && pip install --force-reinstall pyaudio (macOS)"
)
# PortAudio error codes (portaudio.h) that mean something a person can act on.
PA_DEVICE_UNAVAILABLE = -9985
PA_INVALID_DEVICE = -9996


class AudioDeviceError(AssistantError, RuntimeError):
    """A sound device problem, explained so that a person can fix it."""


class PortAudioMissing(AudioDeviceError):
    """PyAudio or the PortAudio library is not installed."""


class NoDevice(AudioDeviceError):
    """There is no such microphone or speaker."""


class DeviceBusy(AudioDeviceError):
    """The device exists but another program holds it."""


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Hide the C libraries' chatter (ALSA lists every card it cannot find) while PortAudio starts."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    saved = os.dup(fd)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def open_portaudio() -> Any:
    """A ``pyaudio.PyAudio`` instance; ``PortAudioMissing`` with the install command when it cannot load."""
    try:
        import pyaudio
    except ImportError as exc:
        raise PortAudioMissing(f"PyAudio or PortAudio is not installed ({exc}); {PORTAUDIO_HINT}") from None
    with _quiet_stderr():
        return pyaudio.PyAudio()


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One PortAudio device, as ``--list-devices`` shows it."""

    index: int
    name: str
    host_api: str
    inputs: int
    outputs: int
    default_rate: int
    default_input: bool = False
    default_output: bool = False

    def describe(self) -> str:
        marks = [
            mark for mark, on in (("default input", self.default_input), ("default output", self.default_output)) if on
        ]
        extra = f"  ({', '.join(marks)})" if marks else ""
        return (
            f"{self.index:>3}  {self.name}  [{self.host_api}]  "
            f"in {self.inputs} / out {self.outputs}, {self.default_rate} Hz{extra}"
        )


def _default_index(pa: Any, direction: Direction) -> int | None:
    try:
        info = pa.get_default_input_device_info() if direction == "input" else pa.get_default_output_device_info()
    except OSError:
        return None
    return int(info["index"])


def list_devices(pa: Any) -> list[DeviceInfo]:
    """Every device PortAudio sees, with the defaults marked."""
    default_in, default_out = _default_index(pa, "input"), _default_index(pa, "output")
    devices = []
    for index in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(index)
        host = pa.get_host_api_info_by_index(info["hostApi"])["name"]
        devices.append(
            DeviceInfo(
                index=index,
                name=str(info["name"]),
                host_api=str(host),
                inputs=int(info["maxInputChannels"]),
                outputs=int(info["maxOutputChannels"]),
                default_rate=int(info["defaultSampleRate"]),
                default_input=index == default_in,
                default_output=index == default_out,
            )
        )
    return devices


def find_device(pa: Any, spec: str | None, direction: Direction) -> DeviceInfo:
    """The device ``spec`` names (an index or part of a name), or the default one."""
    devices = list_devices(pa)
    usable = [d for d in devices if (d.inputs if direction == "input" else d.outputs) > 0]
    thing = "microphone (input device)" if direction == "input" else "speaker (output device)"
    alternative = "--input WAV" if direction == "input" else "--output WAV"
    if not usable:
        raise NoDevice(f"no {thing} found; connect one, or run without sound hardware with {alternative}")
    if spec is None:
        for device in usable:
            if device.default_input if direction == "input" else device.default_output:
                return device
        return usable[0]
    if spec.isdigit():
        for device in usable:
            if device.index == int(spec):
                return device
        raise NoDevice(f"device {spec} is not a {thing}; see `assistant talk --list-devices`")
    matches = [d for d in usable if spec.lower() in d.name.lower()]
    if not matches:
        raise NoDevice(f"no {thing} matches {spec!r}; see `assistant talk --list-devices`")
    return matches[0]


def _supported_rate(pa: Any, device: DeviceInfo, direction: Direction, preferred: int) -> int:
    """``preferred`` when the device takes it (PulseAudio and PipeWire take any), else its own rate."""
    import pyaudio

    keywords: dict[str, Any] = {f"{direction}_device": device.index, f"{direction}_channels": 1}
    keywords[f"{direction}_format"] = pyaudio.paInt16
    try:
        if pa.is_format_supported(preferred, **keywords):
            return preferred
    except ValueError:
        pass
    return device.default_rate


def _open_stream(pa: Any, device: DeviceInfo, direction: Direction, rate: int, callback: Callable[..., Any]) -> Any:
    import pyaudio

    thing = "microphone" if direction == "input" else "speaker"
    try:
        with _quiet_stderr():
            return pa.open(
                format=pyaudio.paInt16,
                channels=1,
                rate=rate,
                frames_per_buffer=rate * BLOCK_MS[direction] // 1000,
                stream_callback=callback,
                start=False,
                **{direction: True, f"{direction}_device_index": device.index},
            )
    except OSError as exc:
        code = exc.errno if isinstance(exc.errno, int) else (exc.args[0] if exc.args else None)
        if code == PA_DEVICE_UNAVAILABLE:
            raise DeviceBusy(
                f"the {thing} {device.name!r} is busy (another program is using it?); close that program, "
                f"or choose another device with --{direction}-device (see --list-devices)"
            ) from None
        if code == PA_INVALID_DEVICE:
            raise NoDevice(f"the {thing} {device.name!r} went away; see `assistant talk --list-devices`") from None
        raise AudioDeviceError(f"cannot open the {thing} {device.name!r}: {exc}") from None


def _monotonic(stream_time: float, current_time: float) -> float | None:
    """A PortAudio stream time as ``time.monotonic()``; None when the host API gives no times."""
    if stream_time <= 0 or current_time <= 0:
        return None
    return time.monotonic() - current_time + stream_time


class Speaker:
    """Plays the reply from a ``PlaybackBuffer`` and records what sounded, and when, for the canceller."""

    def __init__(self, pa: Any, device: DeviceInfo) -> None:
        self.device = device
        self.rate = _supported_rate(pa, device, "output", REPLY_RATE)
        self.playback = PlaybackBuffer(self.rate)
        self.reference = ReferenceTimeline(self.rate)
        self._stream = _open_stream(pa, device, "output", self.rate, self._callback)
        self._latency = float(self._stream.get_output_latency())
        self.reference.tail_s += self._latency

    def _callback(self, _in: bytes | None, frames: int, times: dict[str, float], _status: int) -> tuple[bytes, int]:
        import pyaudio

        samples = self.playback.read(frames)
        sounds_at = _monotonic(times.get("output_buffer_dac_time", 0.0), times.get("current_time", 0.0))
        self.reference.write(samples, sounds_at if sounds_at is not None else time.monotonic() + self._latency)
        return samples.tobytes(), pyaudio.paContinue

    def start(self) -> None:
        self._stream.start_stream()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._stream.stop_stream()
        self._stream.close()


class EchoMeter:
    """Logs how much quieter the microphone got while the speaker played (echo removed, in dB)."""

    def __init__(self, every_s: float = 2.0) -> None:
        self.frames_per_report = int(every_s * AEC_RATE) // FRAME_SAMPLES
        self._captured = self._cleaned = 0.0
        self._frames = 0

    def add(self, captured: np.ndarray, cleaned: np.ndarray) -> None:
        self._captured += float(np.sum(np.square(captured.astype(np.float64))))
        self._cleaned += float(np.sum(np.square(cleaned.astype(np.float64))))
        self._frames += 1
        if self._frames >= self.frames_per_report:
            reduction = 10 * np.log10((self._captured + 1.0) / (self._cleaned + 1.0))
            logger.info("while the speaker played: microphone %.1f dB quieter after echo processing", reduction)
            self._captured = self._cleaned = 0.0
            self._frames = 0


class Microphone:
    """Captures 16 kHz frames, removes the speaker's echo, and hands them to ``on_audio``."""

    def __init__(
        self,
        pa: Any,
        device: DeviceInfo,
        on_audio: Callable[[bytes, float], None],
        processor: EchoProcessor | None = None,
        reference: ReferenceTimeline | None = None,
    ) -> None:
        self.device = device
        self.on_audio = on_audio
        self.processor = processor if reference is not None else None
        self.aligner = None
        if reference is not None and processor is not None:
            self.aligner = EchoAligner(reference, on_disturbance=getattr(processor, "relearn", None))
        self.echo_meter = EchoMeter()
        self.rate = _supported_rate(pa, device, "input", AEC_RATE)
        self._resampler = StreamResampler(self.rate, AEC_RATE) if self.rate != AEC_RATE else None
        self._frames = FrameSplitter(FRAME_SAMPLES)
        self._pending = 0  # samples the splitter holds from earlier blocks
        self._stream = _open_stream(pa, device, "input", self.rate, self._callback)
        self._latency = float(self._stream.get_input_latency())

    def _callback(self, data: bytes, frames: int, times: dict[str, float], _status: int) -> tuple[None, int]:
        import pyaudio

        captured_at = _monotonic(times.get("input_buffer_adc_time", 0.0), times.get("current_time", 0.0))
        if captured_at is None:
            captured_at = time.monotonic() - self._latency - frames / self.rate
        pcm = self._resampler.process(data) if self._resampler is not None else data
        first_frame_at = captured_at - self._pending / AEC_RATE
        blocks = self._frames.push(pcm)
        self._pending = (self._pending + len(pcm) // SAMPLE_WIDTH) - len(blocks) * FRAME_SAMPLES
        processed = [
            self._process(block, first_frame_at + i * FRAME_SAMPLES / AEC_RATE) for i, block in enumerate(blocks)
        ]
        if processed:
            out = np.concatenate(processed)
            self.on_audio(out.tobytes(), level_dbfs(out))
        return None, pyaudio.paContinue

    def _process(self, block: bytes, captured_at: float) -> np.ndarray:
        samples = samples_of(block)
        if self.processor is None or self.aligner is None:
            return samples
        reference = self.aligner.reference_for(samples, captured_at)
        active = self.aligner.timeline.speaker_active(time.monotonic())
        cleaned = self.processor.process(samples, reference, active)
        if active:
            self.echo_meter.add(samples, cleaned)
        return cleaned

    def start(self) -> None:
        self._stream.start_stream()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._stream.stop_stream()
        self._stream.close()
