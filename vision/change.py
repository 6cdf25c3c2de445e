"""Is this frame worth sending or analysing again? A cheap perceptual change gate.

A camera pointed at a desk produces frames that differ in every byte (sensor
noise, JPEG) and in no way a person would notice. Sending them costs tokens
(Gemini) or analysis time (local); skipping them costs nothing. The gate
compares a 64x64 colour thumbnail of the frame with that of the last frame it
let through, and counts cells whose colour moved by more than a noise margin:

- averaging a cell over hundreds of pixels removes sensor noise and JPEG
  ringing, so ``cell_delta`` can be small enough to notice a changed word;
- counting changed cells (instead of a mean difference) notices a small
  change in one place (a new line of text) as well as a large one;
- a 3x3 blur of the thumbnail (``smooth``) absorbs a camera shaking by a few
  pixels; the price is that one short word replaced in place by another of
  the same length may go unnoticed. Screens do not shake: gate them with
  ``smooth=False`` and a changed digit counts;
- comparing against the last *accepted* frame, not the previous one, means a
  slow drift (a page scrolling a pixel per frame) adds up and is noticed.

It works on decoded frames and on encoded bytes; bytes are decoded at 1/8
scale, which for JPEG is mostly free, so a relay can gate every frame it
forwards for about a millisecond.
"""

from __future__ import annotations

import cv2
import numpy as np

from vision.frames import as_bgr, decode_image

DEFAULT_GRID = 64
DEFAULT_CELL_DELTA = 10  # levels (of 255) a cell's colour must move to count as changed
DEFAULT_MIN_CHANGED_FRACTION = 0.003  # of all cells: 12 of 4096, about one short word in a 720p view


class ChangeGate:
    """Lets a frame through when it differs perceptibly from the last one it let through.

    Not thread-safe: give each stream its own gate.
    """

    def __init__(
        self,
        *,
        grid: int = DEFAULT_GRID,
        cell_delta: int = DEFAULT_CELL_DELTA,
        min_changed_fraction: float = DEFAULT_MIN_CHANGED_FRACTION,
        smooth: bool = True,
    ) -> None:
        if grid < 2:
            raise ValueError("grid must be at least 2 cells per side")
        if not 0 < min_changed_fraction <= 1:
            raise ValueError("min_changed_fraction must be in (0, 1]")
        self.grid = grid
        self.cell_delta = cell_delta
        self.min_changed_fraction = min_changed_fraction
        self.smooth = smooth
        self._reference: np.ndarray | None = None
        self.last_score = 1.0

    def thumbnail(self, image: np.ndarray | bytes) -> np.ndarray:
        """The grid x grid colour thumbnail the gate compares (int16, so differences do not wrap)."""
        if isinstance(image, bytes | bytearray | memoryview):
            pixels = decode_image(bytes(image), reduce=8)
            if min(pixels.shape[:2]) < self.grid:  # a small image: decode it whole, it is cheap
                pixels = decode_image(bytes(image))
        else:
            pixels = as_bgr(image)
        # Cropping to a multiple of the grid (at most grid-1 edge pixels) puts OpenCV's area
        # averaging on its integer-factor path: 1.7 ms instead of 7 ms for a 720p frame.
        height, width = pixels.shape[:2]
        if height >= self.grid and width >= self.grid:
            pixels = pixels[: height - height % self.grid, : width - width % self.grid]
        small = cv2.resize(pixels, (self.grid, self.grid), interpolation=cv2.INTER_AREA)
        if self.smooth:
            small = cv2.blur(small, (3, 3))
        return small.astype(np.int16)

    def score(self, image: np.ndarray | bytes) -> float:
        """Fraction of cells that changed since the last accepted frame (1.0 before the first)."""
        return self._score(self.thumbnail(image))

    def changed(self, image: np.ndarray | bytes) -> bool:
        """Whether ``image`` differs enough; if so it becomes the new reference.

        The fraction of changed cells is left in ``last_score`` (for logs and tuning).
        """
        thumbnail = self.thumbnail(image)
        self.last_score = self._score(thumbnail)
        if self.last_score < self.min_changed_fraction:
            return False
        self._reference = thumbnail
        return True

    def reset(self) -> None:
        """Forget the reference, so the next frame is let through (a new stream or a new question)."""
        self._reference = None

    def difference(self, thumbnail: np.ndarray, other: np.ndarray) -> float:
        """Fraction of cells whose colour moved by more than ``cell_delta`` between two thumbnails."""
        moved = np.abs(thumbnail - other).max(axis=2) > self.cell_delta
        return float(moved.mean())

    def _score(self, thumbnail: np.ndarray) -> float:
        return 1.0 if self._reference is None else self.difference(thumbnail, self._reference)
