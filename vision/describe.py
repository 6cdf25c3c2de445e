"""From a frame to a short description the local LLM can read.

The analysers (caption, text, faces, labels, colours) run side by side on
worker threads and their phrases are joined in a fixed order:

    "Text: 'OPEN 9 TO 5'. One face. Looks like a street sign (48%). Mostly red, bright."

Analysis costs about a second of CPU (OCR is most of it), so it runs only
when someone asks (``describe_view``, a question to the local backend) or
the view changed, and never twice for the same view:

- identical frame bytes hit an LRU cache, and concurrent requests for the same
  frame share one analysis (``describe_async``);
- a frame that differs only by noise from a recently described one reuses
  that description: not one cell of the ``ChangeGate`` thumbnail (unsmoothed)
  may have moved, because a stale reading of one changed digit is worse than
  a second of analysis.

One describer serves every session in the process, so the models load once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from assistant.errors import AssistantError
from assistant.protocol import VideoFrame
from vision.analysers.base import Analyser, AnalyserUnavailable, Finding
from vision.change import DEFAULT_GRID, ChangeGate
from vision.frames import DEFAULT_MAX_SIDE, as_bgr, decode_image, fit_within

log = logging.getLogger(__name__)

PHRASE_ORDER = ("caption", "text", "faces", "labels", "colours")
DEFAULT_CACHE_SIZE = 16
DEFAULT_RECENT_VIEWS = 4

FrameInput = VideoFrame | bytes | np.ndarray


class VisionUnavailable(AssistantError, RuntimeError):
    """No analyser can run here; the message lists why, analyser by analyser."""


@dataclass(frozen=True, slots=True)
class ViewDescription:
    """What the analysers found in one frame, and the sentence made from it."""

    text: str
    findings: dict[str, Finding]
    unavailable: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0  # analysis time; 0 when reused
    reused: bool = False  # served from the cache or a perceptually identical recent view


def default_analysers(*, ocr: str = "rapidocr", vlm_model: str | None = None) -> list[Analyser]:
    """The standard set: OCR, faces, ImageNet labels, colours, and a VLM when one is named.

    ``ocr`` is "rapidocr" or "tesseract". Construction is cheap; models load on first use.
    """
    from vision.analysers.colours import ColourAnalyser
    from vision.analysers.faces import HaarFaceDetector
    from vision.analysers.labels import MobileNetClassifier
    from vision.analysers.ocr import RapidOcrReader, TesseractReader
    from vision.analysers.vlm import TransformersVlm

    readers: dict[str, type[Analyser]] = {"rapidocr": RapidOcrReader, "tesseract": TesseractReader}
    if ocr not in readers:
        raise ValueError(f"unknown OCR engine {ocr!r}: choose rapidocr or tesseract")
    analysers: list[Analyser] = [readers[ocr](), HaarFaceDetector(), MobileNetClassifier(), ColourAnalyser()]
    if vlm_model:
        analysers.insert(0, TransformersVlm(vlm_model))
    return analysers


def compose(findings: dict[str, Finding]) -> str:
    """The findings' phrases, in a fixed order, as one short paragraph."""
    names = sorted(findings, key=lambda name: PHRASE_ORDER.index(name) if name in PHRASE_ORDER else len(PHRASE_ORDER))
    return " ".join(phrase for name in names if (phrase := findings[name].phrase()))


class ViewDescriber:
    """Describes frames with a set of analysers, caching by frame and by view. Thread-safe."""

    def __init__(
        self,
        analysers: Sequence[Analyser] | None = None,
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
        recent_views: int = DEFAULT_RECENT_VIEWS,
        max_side: int = DEFAULT_MAX_SIDE,
        gate: ChangeGate | None = None,
    ) -> None:
        self.analysers = list(analysers) if analysers is not None else default_analysers()
        names = [analyser.name for analyser in self.analysers]
        if len(set(names)) != len(names):
            raise ValueError(f"two analysers share a name: {names}")
        self.max_side = max_side
        self._gate = gate or ChangeGate(smooth=False, min_changed_fraction=1 / DEFAULT_GRID**2)
        self._cache: OrderedDict[str, ViewDescription] = OrderedDict()
        self._cache_size = cache_size
        self._recent: list[tuple[np.ndarray, ViewDescription]] = []
        self._recent_views = recent_views
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self.analysers)), thread_name_prefix="vision")
        self._in_flight: dict[str, asyncio.Future[ViewDescription]] = {}  # used on the event loop only

    def preload(self) -> dict[str, str]:
        """Load every analyser now (at server start, not in the first question); returns the unavailable ones."""
        unavailable = {}
        for analyser in self.analysers:
            try:
                analyser.load()
            except AnalyserUnavailable as error:
                unavailable[analyser.name] = str(error)
                log.warning("vision analyser %s unavailable: %s", analyser.name, error)
        return unavailable

    def describe(self, frame: FrameInput) -> ViewDescription:
        """Describe one frame (blocking; see ``describe_async`` for the event loop)."""
        key = self._key(frame)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return _reused(cached)
        image = fit_within(self._decode(frame), self.max_side)
        thumbnail = self._gate.thumbnail(image)
        with self._lock:
            for seen, description in self._recent:
                if self._gate.difference(thumbnail, seen) < self._gate.min_changed_fraction:
                    self._remember(key, thumbnail, description)
                    return _reused(description)
        description = self._analyse(image)
        with self._lock:
            self._remember(key, thumbnail, description)
        return description

    async def describe_async(self, frame: FrameInput) -> ViewDescription:
        """Describe one frame on worker threads; concurrent calls for the same frame share one analysis."""
        key = self._key(frame)
        pending = self._in_flight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(asyncio.to_thread(self.describe, frame))
            self._in_flight[key] = pending
            pending.add_done_callback(lambda done: self._finished(key, done))
        # A caller that gives up (barge-in) must not cancel the analysis others are waiting for.
        return await asyncio.shield(pending)

    def _finished(self, key: str, done: asyncio.Future[ViewDescription]) -> None:
        self._in_flight.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved here, so an analysis nobody waits for any more logs nothing

    def close(self) -> None:
        """Stop the worker threads (after the analyses in progress)."""
        self._pool.shutdown(wait=True)

    def _analyse(self, image: np.ndarray) -> ViewDescription:
        started = time.perf_counter()
        futures = {analyser.name: self._pool.submit(analyser.analyse, image) for analyser in self.analysers}
        findings: dict[str, Finding] = {}
        unavailable: dict[str, str] = {}
        failed: dict[str, str] = {}
        for name, future in futures.items():
            try:
                findings[name] = future.result()
            except AnalyserUnavailable as error:
                unavailable[name] = str(error)
            except Exception as error:
                log.exception("vision analyser %s failed", name)
                failed[name] = f"{type(error).__name__}: {error}"
        if not findings:
            reasons = "; ".join(f"{name}: {reason}" for name, reason in {**unavailable, **failed}.items())
            raise VisionUnavailable(f"no vision analyser could run ({reasons})")
        return ViewDescription(compose(findings), findings, unavailable, failed, time.perf_counter() - started)

    def _remember(self, key: str, thumbnail: np.ndarray, description: ViewDescription) -> None:
        self._cache[key] = description
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        self._recent = [(thumbnail, description), *self._recent][: self._recent_views]

    @staticmethod
    def _key(frame: FrameInput) -> str:
        if isinstance(frame, VideoFrame):
            data = frame.image
        elif isinstance(frame, np.ndarray):
            data = str(frame.shape).encode() + np.ascontiguousarray(frame).tobytes()
        else:
            data = bytes(frame)
        return hashlib.blake2b(data, digest_size=16).hexdigest()

    @staticmethod
    def _decode(frame: FrameInput) -> np.ndarray:
        if isinstance(frame, VideoFrame):
            return decode_image(frame.image)
        if isinstance(frame, np.ndarray):
            return as_bgr(frame)
        return decode_image(bytes(frame))


def _reused(description: ViewDescription) -> ViewDescription:
    return ViewDescription(
        description.text, description.findings, description.unavailable, description.failed, 0.0, reused=True
    )
