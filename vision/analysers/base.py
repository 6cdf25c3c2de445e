"""What every local analyser shares: lazy loading, a lock, and a clear "unavailable".

Each analyser is optional. One that cannot run here (its package, its model
or its GPU is missing) raises ``AnalyserUnavailable`` with a message that
names exactly what to install or where to put the model; the describer then
carries on without it. Nothing pretends: a missing analyser says so.

Models load on first use and are shared by every session in the process;
inference holds a per-analyser lock because OpenCV's cascade classifier and
OCR pipelines keep per-call state and are not safe to call concurrently.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import ClassVar, Protocol

import numpy as np

from assistant.errors import AssistantError


class AnalyserUnavailable(AssistantError, RuntimeError):
    """This analyser cannot run here; the message says what is missing and how to get it."""


class Finding(Protocol):
    """One analyser's result about one frame."""

    def phrase(self) -> str:
        """A short sentence for the view's description, or "" when there is nothing to say."""
        ...


class Analyser(ABC):
    """Loads its model once (thread-safe), then analyses BGR frames one at a time."""

    name: ClassVar[str]

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded = False
        self._unavailable: AnalyserUnavailable | None = None

    def load(self) -> None:
        """Load the model now (idempotent); raises ``AnalyserUnavailable``, every time, if it cannot."""
        with self._lock:
            self._load_locked()

    def available(self) -> bool:
        """Whether the analyser can run (loads it to find out)."""
        try:
            self.load()
        except AnalyserUnavailable:
            return False
        return True

    def analyse(self, image: np.ndarray) -> Finding:
        """The finding for one BGR frame (blocking: call from a worker thread)."""
        with self._lock:
            self._load_locked()
            return self._analyse(image)

    def _load_locked(self) -> None:
        if self._unavailable is not None:
            raise self._unavailable
        if self._loaded:
            return
        try:
            self._load()
        except AnalyserUnavailable as error:
            self._unavailable = error
            raise
        self._loaded = True

    @abstractmethod
    def _load(self) -> None:
        """Import packages and read model files; raise ``AnalyserUnavailable`` naming what is missing."""

    @abstractmethod
    def _analyse(self, image: np.ndarray) -> Finding:
        """Analyse one frame with the loaded model."""
