"""``assistant bench frontend``: what the audio and video front end costs per frame.

The audio path is driven the way ``assistant talk`` drives it, 20 ms at a
time on a simulated clock, over the echo scene of ``audio.echo_bench`` (a
spoken reply through a laptop speaker and a room, the user talking over
it; espeak-ng speech made at run time):

- the microphone at 48 kHz resampled to 16 kHz (soxr, as ``Microphone``);
- echo alignment: the reference read for each 10 ms frame, and the
  GCC-PHAT echo-lag tracker (``audio.alignment``; its FFT runs every
  250 ms, so its p95 is what matters);
- the echo canceller (speexdsp MDF plus its residual suppressor,
  ``audio.aec``), twice per 20 ms;
- the reply's way out: the jitter buffer (resampling 24 -> 48 kHz) and the
  reference timeline that remembers what the speaker played;
- on the server, Silero VAD (``audio.vad``) on the 16 kHz stream, as the
  local backend runs it per session.

Each stage is timed per call (p50, p95, max, and p50 as a share of the
audio one call processes): 20 ms blocks, as the devices deliver them, and
10 ms frames for the echo stages. soxr hands resampled audio out in bursts
(no frame from one block, three from the next), so the client's total is
also given per 20 ms device block, as a callback pays it. The same scene gives
the echo figures of every processor (ERLE, double talk), as the tests check
them. The video rows come from ``assistant.bench.vision_costs``: the sampler per camera
frame in each of its outcomes, and the change gate on relayed JPEGs.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from assistant.bench.plot import plot_frontend
from assistant.bench.report import (
    Distribution,
    Machine,
    ModelInfo,
    describe_models,
    format_table,
    publish,
    seed_everything,
)

if TYPE_CHECKING:
    from audio.echo_bench import EchoFigures

FRAME_MS = 20
DEVICE_RATE = 48_000
OUTPUT_LATENCY_S = 0.1  # a block handed to the speaker now sounds this much later
REPLY_RATE = 24_000


@dataclass(frozen=True, slots=True)
class Cost:
    """Microseconds per frame (``max`` only where every sample was kept)."""

    n: int
    p50: float
    p95: float
    max: float | None

    @classmethod
    def of(cls, micros: list[float]) -> Cost | None:
        summary = Distribution.of(micros)
        return None if summary is None else cls(summary.n, summary.p50, summary.p95, summary.max)


@dataclass
class StageCost:
    """The cost of one stage per frame."""

    side: str  # client, server, or the video path
    frame: str  # what one frame is
    frame_ms: float  # how much media one frame carries, the real-time budget
    cost_us: Cost | None
    unavailable: str | None = None

    @property
    def share(self) -> float | None:
        """The p50 cost as a fraction of the frame's own duration."""
        return None if self.cost_us is None else self.cost_us.p50 / (self.frame_ms * 1000)


class Stopwatch:
    """Microseconds per call of each stage, and the client's whole cost per 20 ms device block."""

    def __init__(self) -> None:
        self.calls: dict[str, list[float]] = {}
        self.block_totals: list[float] = []
        self._block = 0.0

    def time(self, stage: str, action: Callable[[], Any]) -> Any:
        started = time.perf_counter_ns()
        result = action()
        micros = (time.perf_counter_ns() - started) / 1000
        self.calls.setdefault(stage, []).append(micros)
        if stage in CLIENT_STAGES:
            self._block += micros
        return result

    def next_block(self) -> None:
        self.block_totals.append(self._block)
        self._block = 0.0


MIC_RESAMPLE = "mic resample 48->16 kHz"
ALIGNMENT = "echo alignment (GCC-PHAT)"
CANCELLER = "echo canceller (speex)"
PLAYBACK = "jitter buffer + 24->48 kHz"
REFERENCE = "speaker reference"
VAD = "VAD (Silero)"
CLIENT_STAGES = (MIC_RESAMPLE, ALIGNMENT, CANCELLER, PLAYBACK, REFERENCE)
CLIENT_TOTAL = "client total"
TEN_MS_STAGES = (ALIGNMENT, CANCELLER)  # they run per 10 ms frame, however the resampler hands audio out


class TalkAudioPath:
    """The talk client's audio path (and the server's VAD) over the echo scene, one 20 ms frame at a time.

    Built from the same parts ``audio.devices`` joins, on a simulated clock:
    the devices' callbacks are replaced by a loop, nothing else.
    """

    def __init__(self, watch: Stopwatch, vad: Any | None) -> None:
        from audio.aec import FRAME_SAMPLES, SpeexEchoCanceller
        from audio.alignment import EchoAligner
        from audio.echo_bench import default_scene
        from audio.pcm import FrameSplitter
        from audio.playback import PlaybackBuffer, ReferenceTimeline
        from audio.resample import StreamResampler, resample
        from audio.speexdsp import SpeexUnavailable

        scene = default_scene()
        self.speech = scene.microphone.tobytes()
        self.microphone = np.frombuffer(resample(scene.microphone.tobytes(), 16_000, DEVICE_RATE), "<i2")
        self.reply = resample(scene.reference.tobytes(), 16_000, REPLY_RATE)
        self.mic_block = DEVICE_RATE * FRAME_MS // 1000
        self.reply_block = REPLY_RATE * FRAME_MS // 1000 * 2
        self.frames = min(len(self.microphone) // self.mic_block, len(self.reply) // self.reply_block)
        self.watch = watch
        self.vad = vad
        self.unavailable: dict[str, str] = {}
        try:
            self.canceller: SpeexEchoCanceller | None = SpeexEchoCanceller()
        except SpeexUnavailable as exc:
            self.canceller, self.unavailable[CANCELLER] = None, str(exc)
        self.resampler = StreamResampler(DEVICE_RATE, 16_000)
        self.splitter = FrameSplitter(FRAME_SAMPLES)
        self.playback = PlaybackBuffer(DEVICE_RATE)
        self.timeline = ReferenceTimeline(DEVICE_RATE)
        self.aligner = EchoAligner(self.timeline)

    def run(self) -> None:
        for index in range(self.frames):
            self.frame(index)
            self.watch.next_block()

    def frame(self, index: int) -> None:
        from audio.aec import FRAME_SAMPLES, audible
        from audio.pcm import samples_of

        watch, now = self.watch, index * FRAME_MS / 1000
        chunk = self.reply[index * self.reply_block : (index + 1) * self.reply_block]
        played = watch.time(PLAYBACK, partial(self._play, chunk))
        watch.time(REFERENCE, partial(self.timeline.write, played, now + OUTPUT_LATENCY_S))
        block = self.microphone[index * self.mic_block : (index + 1) * self.mic_block].tobytes()
        pcm = watch.time(MIC_RESAMPLE, partial(self.resampler.process, block))
        for number, frame in enumerate(self.splitter.push(pcm)):
            captured = samples_of(frame)
            at = now + number * FRAME_SAMPLES / 16_000
            reference = watch.time(ALIGNMENT, partial(self.aligner.reference_for, captured, at))
            if self.canceller is not None:
                process = partial(self.canceller.process, captured, reference, audible(reference))
                watch.time(CANCELLER, process)
        if self.vad is not None:  # on the server, on what a client sends: 20 ms at 16 kHz
            chunk16 = self.speech[index * 640 : (index + 1) * 640]
            watch.time(VAD, partial(self.vad.process, chunk16))

    def _play(self, chunk: bytes) -> np.ndarray:
        """The reply's way out: into the jitter buffer, and a device block out of it."""
        self.playback.push(chunk)
        return self.playback.read(self.mic_block)


def audio_costs(rounds: int) -> tuple[dict[str, StageCost], list[ModelInfo]]:
    """Run the talk client's audio path and the server's VAD over the echo scene, ``rounds`` times."""
    from audio.vad import VAD_PACKAGE, SileroVad, VadUnavailable

    watch = Stopwatch()
    unavailable: dict[str, str] = {}
    models: list[ModelInfo] = []
    try:
        vad: SileroVad | None = SileroVad()
        models.append(ModelInfo.of("voice activity detection", "Silero VAD", VAD_PACKAGE))
    except VadUnavailable as exc:
        vad, unavailable[VAD] = None, str(exc)
    for _ in range(rounds):
        if vad is not None:
            vad.reset()
        path = TalkAudioPath(watch, vad)
        unavailable.update(path.unavailable)
        path.run()
    costs = {}
    for stage in (*CLIENT_STAGES, VAD):
        frame_ms = 10 if stage in TEN_MS_STAGES else FRAME_MS
        side = "server" if stage == VAD else "client"
        costs[stage] = StageCost(side, f"{frame_ms} ms of audio", frame_ms, Cost.of(watch.calls.get(stage, [])))
    costs[CLIENT_TOTAL] = StageCost("client", "20 ms device block", FRAME_MS, Cost.of(watch.block_totals))
    for stage, reason in unavailable.items():
        costs[stage].unavailable = reason
    return costs, models


def video_costs(frames: int) -> dict[str, StageCost]:
    """The sampler per 1280x720 camera frame, in each outcome (``bench.vision_costs``); video needs the vision extra."""
    try:
        from assistant.bench.vision_costs import bench_sampler
    except ModuleNotFoundError as exc:
        reason = f"{exc.name} is missing: pip install 'live-assistant[vision]'"
        return {"video sampler": StageCost("video", "camera frame", 1000 / 30, None, reason)}
    meaning = {
        "rate_limited": ("sampler: not due (no decode)", "1280x720 camera frame", 1000 / 30),
        "unchanged": ("sampler: due, unchanged", "1280x720 camera frame", 1000 / 30),
        "sent": ("sampler: sent (resize + JPEG)", "1280x720 camera frame", 1000 / 30),
        "change_gate_on_jpeg": ("change gate on a relayed JPEG", "JPEG frame, 1 per second", 1000.0),
    }
    costs = {}
    for outcome, timing in bench_sampler(frames).items():
        name, frame, frame_ms = meaning[outcome]
        micros = Cost(timing.calls, timing.p50 * 1000, timing.p95 * 1000, None)  # vision_costs keeps ms p50, p95
        costs[name] = StageCost("video", frame, frame_ms, micros)
    return costs


def echo_figures() -> dict[str, EchoFigures | str]:
    """ERLE and double talk of every echo processor on the scene (``audio.echo_bench``), or why not."""
    from audio.echo_bench import CANDIDATES, default_scene, measure
    from audio.speexdsp import SpeexUnavailable

    scene = default_scene()
    figures: dict[str, EchoFigures | str] = {}
    for name, factory in CANDIDATES.items():
        try:
            figures[name] = measure(factory(), scene)
        except SpeexUnavailable as exc:
            figures[name] = str(exc)
    return figures


def cost_table(costs: dict[str, StageCost]) -> str:
    rows: list[list[Any]] = []
    for name, cost in costs.items():
        if cost.cost_us is None:
            rows.append([name, cost.side, None, None, None, f"unavailable: {cost.unavailable}"])
            continue
        share = f"{cost.share * 100:.2f}% of {cost.frame_ms:.0f} ms" if cost.share is not None else None
        rows.append([name, cost.side, cost.cost_us.p50, cost.cost_us.p95, cost.cost_us.max, share])
    return format_table(["us per frame", "where", "p50", "p95", "max", "p50 share of real time"], rows)


def echo_table(figures: dict[str, EchoFigures | str]) -> str:
    """The echo processors' figures in ``audio.echo_bench``'s own table."""
    from audio.echo_bench import TABLE_HEADER

    rows = [
        row.table_row(name) if not isinstance(row, str) else f"{name:<44} unavailable: {row}"
        for name, row in figures.items()
    ]
    return "\n".join([TABLE_HEADER, *rows])


def run(args: argparse.Namespace) -> int:
    seed_everything(args.seed)
    machine = Machine.now()
    try:
        audio, models = audio_costs(rounds=1 if args.quick else 3)
        echo = echo_figures()
    except RuntimeError as exc:  # espeak-ng missing: the scene cannot be spoken
        print(f"assistant bench frontend: {exc}", file=sys.stderr)
        return 2
    video = video_costs(frames=40 if args.quick else 200)
    machine.finish()
    costs = {**audio, **video}
    print("assistant bench frontend   (audio per 20 ms frame; video per frame offered)\n")
    print(cost_table(costs))
    print()
    print(echo_table(echo))
    print("ERLE: echo removed once learnt (99: muted); DT: the user's voice while both talk; heard: barge-in after")
    if models:
        print(describe_models(models))
    print(machine.describe())
    report = {
        "benchmark": "frontend",
        "seed": args.seed,
        "quick": args.quick,
        "machine": machine.to_json(),
        "models": [asdict(model) for model in models],
        "stages": {name: asdict(cost) | {"share_of_real_time": cost.share} for name, cost in costs.items()},
        "echo": {name: {"unavailable": row} if isinstance(row, str) else asdict(row) for name, row in echo.items()},
    }
    publish(args, report, plot_frontend)
    return 0
