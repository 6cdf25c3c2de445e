"""What vision costs per frame, and how well it reads (run by ``assistant bench frontend`` and ``vision``).

Measures, on frames drawn here (no files needed):

- the sampler per camera frame, in its three outcomes: rejected by the rate
  cap (no decode), rejected by the change gate, and sent (resize + JPEG);
- the change gate on relayed JPEG bytes (what a Gemini relay would pay);
- each analyser per frame (first call excluded: that is model loading);
- OCR accuracy: character error rate on sentences rendered in four fonts,
  flat and tilted by 3 degrees, after the sampler's own resize and JPEG
  encoding.

Timings are wall-clock p50/p95 in milliseconds (nearest rank); on a shared
machine they vary with load, so compare runs made under the same conditions.
``assistant bench`` prints them with the machine they were measured on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from assistant.bench.report import percentile
from vision.analysers.base import Analyser, AnalyserUnavailable
from vision.change import ChangeGate
from vision.frames import Frame, decode_image, encode_jpeg
from vision.sampler import FrameSampler

# Sentences a camera might be shown, with the OpenCV font each is drawn in.
SENTENCES = (
    ("The library opens at nine on Saturday", cv2.FONT_HERSHEY_SIMPLEX),
    ("Take two tablets with water after meals", cv2.FONT_HERSHEY_DUPLEX),
    ("Platform 4 for the 10:45 train to Leeds", cv2.FONT_HERSHEY_COMPLEX),
    ("Please keep this door closed at all times", cv2.FONT_HERSHEY_TRIPLEX),
)


def render_text_frame(
    text: str,
    *,
    font: int = cv2.FONT_HERSHEY_SIMPLEX,
    size: tuple[int, int] = (1280, 720),
    ink: tuple[int, int, int] = (25, 25, 25),
    paper: tuple[int, int, int] = (235, 240, 242),
    tilt_degrees: float = 3.0,
    seed: int = 0,
) -> np.ndarray:
    """A camera-like frame of a printed line: a sheet on a desk, slightly tilted, with sensor noise."""
    width, height = size
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = (70, 95, 120)  # a wooden desk
    sheet = np.empty((height // 3, width * 7 // 8, 3), np.uint8)
    sheet[:] = paper
    scale = 1.0
    while cv2.getTextSize(text, font, scale + 0.1, 2)[0][0] < sheet.shape[1] * 0.9:
        scale += 0.1
    (text_width, text_height), _ = cv2.getTextSize(text, font, scale, 2)
    origin = ((sheet.shape[1] - text_width) // 2, (sheet.shape[0] + text_height) // 2)
    cv2.putText(sheet, text, origin, font, scale, ink, 2, cv2.LINE_AA)
    top, left = (height - sheet.shape[0]) // 2, (width - sheet.shape[1]) // 2
    frame[top : top + sheet.shape[0], left : left + sheet.shape[1]] = sheet
    rotation = cv2.getRotationMatrix2D((width / 2, height / 2), tilt_degrees, 1.0)
    tilted = cv2.warpAffine(frame, rotation, (width, height), borderMode=cv2.BORDER_REPLICATE)
    noise = np.random.default_rng(seed).normal(0, 3, tilted.shape)
    return np.clip(tilted + noise, 0, 255).astype(np.uint8)


def character_error_rate(reference: str, hypothesis: str) -> float:
    """Levenshtein distance over characters, divided by the reference's length (case and spacing kept)."""
    previous = list(range(len(hypothesis) + 1))
    for i, expected in enumerate(reference, start=1):
        current = [i]
        for j, got in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (expected != got)))
        previous = current
    return previous[-1] / max(1, len(reference))


@dataclass
class Timing:
    """Milliseconds per call."""

    p50: float
    p95: float
    calls: int

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Timing:
        return cls(round(percentile(seconds, 0.5) * 1000, 3), round(percentile(seconds, 0.95) * 1000, 3), len(seconds))


def _time(action: Callable[[], object], repeats: int) -> Timing:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return Timing.of(seconds)


def bench_sampler(frames: int = 200, size: tuple[int, int] = (1280, 720)) -> dict[str, Timing]:
    """Per-frame cost of each sampler outcome, on camera-sized frames."""
    still = render_text_frame("A page on the desk", size=size)
    moving = [render_text_frame(f"Page number {index}", size=size, seed=index) for index in range(8)]
    sampler = FrameSampler()
    sampler.offer(Frame(still, 0.0))
    rate_limited = _time(lambda: sampler.offer(Frame(still, 0.5)), frames)  # not due: nothing decoded or scaled

    unchanged_sampler = FrameSampler()
    unchanged_sampler.offer(Frame(still, 0.0))
    clock = iter(range(1, 10**9))
    unchanged = _time(lambda: unchanged_sampler.offer(Frame(still, float(next(clock)))), frames)

    sending = FrameSampler()
    counter = iter(range(10**9))

    def send_one() -> None:
        index = next(counter)
        sending.offer(Frame(moving[index % len(moving)], float(index)))

    sent = _time(send_one, max(10, frames // 4))
    gate = ChangeGate()
    jpegs = [encode_jpeg(frame) for frame in moving]
    pick = iter(range(10**9))
    gate_bytes = _time(lambda: gate.changed(jpegs[next(pick) % len(jpegs)]), frames)
    return {
        "rate_limited": rate_limited,
        "unchanged": unchanged,
        "sent": sent,
        "change_gate_on_jpeg": gate_bytes,
    }


def bench_analysers(analysers: Sequence[Analyser], repeats: int = 5) -> tuple[dict[str, Timing], dict[str, str]]:
    """Per-frame cost of each analyser on a sampled 1024x576 frame (loading excluded)."""
    frame = render_text_frame("Fresh bread baked every morning")
    sampled = FrameSampler().offer(Frame(frame, 0.0))
    assert sampled is not None
    image = decode_image(sampled.jpeg)
    timings, unavailable = {}, {}
    for analyser in analysers:
        try:
            analyser.load()
        except AnalyserUnavailable as error:
            unavailable[analyser.name] = str(error)
            continue
        analyser.analyse(image)
        timings[analyser.name] = _time(lambda analyser=analyser: analyser.analyse(image), repeats)  # type: ignore[misc]
    return timings, unavailable


def ocr_accuracy(
    reader: Analyser, sentences: Sequence[tuple[str, int]] = SENTENCES, tilts: Sequence[float] = (0.0, 3.0)
) -> dict[str, dict[str, float]]:
    """Character error rate per rendered sentence and tilt, read from the sampler's JPEG as a client sends it."""
    rates: dict[str, dict[str, float]] = {}
    for seed, (sentence, font) in enumerate(sentences):
        for tilt in tilts:
            frame = render_text_frame(sentence, font=font, tilt_degrees=tilt, seed=seed)
            sampled = FrameSampler().offer(Frame(frame, 0.0))
            assert sampled is not None
            finding = reader.analyse(decode_image(sampled.jpeg))
            read = " ".join(finding.text.split())  # type: ignore[attr-defined]
            rates.setdefault(sentence, {})[f"tilt {tilt:g}°"] = round(character_error_rate(sentence, read), 4)
    return rates
