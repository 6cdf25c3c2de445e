"""Counting faces with the Haar cascades that OpenCV 4.x ships in ``cv2.data``.

Haar cascades are old, but the model is inside the OpenCV wheel, runs in tens
of milliseconds on a CPU and counts frontal faces well, which is what "is
anyone there?" needs. OpenCV 5 dropped ``cv2.data``; the project pins
``opencv-python-headless<5`` for that reason, and this analyser says so when
it meets a build without the cascades.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vision.analysers.base import Analyser, AnalyserUnavailable

CASCADE = "haarcascade_frontalface_default.xml"
DETECTION_SIDE = 640  # detect on a copy at most this large: faces in a webcam view stay well above minSize
NUMBER_WORDS = ("No", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine")


@dataclass(frozen=True, slots=True)
class FaceFinding:
    boxes: list[tuple[int, int, int, int]]  # x, y, width, height in the analysed frame's pixels

    @property
    def count(self) -> int:
        return len(self.boxes)

    def phrase(self) -> str:
        if not self.boxes:
            return ""
        number = NUMBER_WORDS[self.count] if self.count < len(NUMBER_WORDS) else str(self.count)
        return f"{number} face{'s' if self.count > 1 else ''}."


class HaarFaceDetector(Analyser):
    """Frontal faces, counted and boxed."""

    name = "faces"

    def __init__(self, *, min_neighbours: int = 5, min_face_fraction: float = 0.06) -> None:
        super().__init__()
        self.min_neighbours = min_neighbours
        self.min_face_fraction = min_face_fraction
        self._cascade: cv2.CascadeClassifier | None = None

    def _load(self) -> None:
        folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
        if folder is None or not (Path(folder) / CASCADE).is_file():
            raise AnalyserUnavailable(
                f"OpenCV {cv2.__version__} carries no Haar cascades (OpenCV 5 removed cv2.data): "
                "pip install 'opencv-python-headless<5'"
            )
        cascade = cv2.CascadeClassifier(str(Path(folder) / CASCADE))
        if cascade.empty():
            raise AnalyserUnavailable(f"OpenCV could not read {Path(folder) / CASCADE}")
        self._cascade = cascade

    def _analyse(self, image: np.ndarray) -> FaceFinding:
        assert self._cascade is not None
        height, width = image.shape[:2]
        scale = min(1.0, DETECTION_SIDE / max(height, width))
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        if scale < 1.0:
            grey = cv2.resize(grey, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        smallest = max(24, round(min(grey.shape) * self.min_face_fraction))
        found = self._cascade.detectMultiScale(
            grey, scaleFactor=1.1, minNeighbors=self.min_neighbours, minSize=(smallest, smallest)
        )
        boxes = [tuple(round(value / scale) for value in box) for box in np.asarray(found).reshape(-1, 4)]
        return FaceFinding(sorted(boxes))  # type: ignore[arg-type]
