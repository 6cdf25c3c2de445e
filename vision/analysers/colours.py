"""Dominant colours and brightness, named the way a person would name them.

Every pixel of a 64x64 thumbnail gets one of twelve everyday colour names
from its hue, saturation and value (fixed rules, no clustering: the same
image always gets the same answer, in about a millisecond). The view's
colours are the names' shares; the centre third is reported separately,
because "what colour is this?" is usually about the thing held up to the
camera, not the wall behind it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vision.analysers.base import Analyser

THUMBNAIL = 64
MIN_SHARE = 0.12  # a colour covering less of the view is not worth naming
MOSTLY = 0.5

# Hue bands in degrees (upper bounds, exclusive) for saturated pixels.
HUE_BANDS = (
    (15, "red"),
    (40, "orange"),
    (70, "yellow"),
    (165, "green"),
    (195, "cyan"),
    (255, "blue"),
    (290, "purple"),
    (340, "pink"),
    (361, "red"),
)
NAMES = ("black", "grey", "white", "brown", *dict.fromkeys(name for _, name in HUE_BANDS))


def name_pixels(bgr: np.ndarray) -> np.ndarray:
    """An index into ``NAMES`` for every pixel of a BGR image."""
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV_FULL).astype(np.float32)
    hue = hsv[..., 0] * (360.0 / 256.0)
    saturation = hsv[..., 1] / 255.0
    value = hsv[..., 2] / 255.0
    names = np.empty(hue.shape, dtype=np.int8)
    for upper, name in reversed(HUE_BANDS):
        names[hue < upper] = NAMES.index(name)
    light_red = (names == NAMES.index("red")) & (saturation < 0.5) & (value > 0.7)
    names[light_red] = NAMES.index("pink")
    brownish = (hue >= 10) & (hue < 45) & (value < 0.6)
    names[brownish] = NAMES.index("brown")
    achromatic = (saturation < 0.2) | (saturation * value < 0.08)
    names[achromatic] = NAMES.index("grey")
    names[achromatic & (value > 0.78)] = NAMES.index("white")
    names[value < 0.18] = NAMES.index("black")
    return names


def shares(names: np.ndarray) -> list[tuple[str, float]]:
    """Colour names and the fraction of pixels they cover, largest first."""
    counts = np.bincount(names.ravel(), minlength=len(NAMES)) / names.size
    order = np.argsort(-counts, kind="stable")
    return [(NAMES[index], float(counts[index])) for index in order if counts[index] > 0]


def brightness_word(level: float) -> str:
    """A word for the mean brightest channel (0..1, HSV's value); "" for ordinary light.

    Value rather than luminance, so that a vivid red or blue is "bright", not "dim".
    """
    if level < 0.2:
        return "dark"
    if level < 0.4:
        return "dim"
    if level > 0.7:
        return "bright"
    return ""


@dataclass(frozen=True, slots=True)
class ColourFinding:
    colours: list[tuple[str, float]]
    centre: list[tuple[str, float]]
    brightness: float

    @property
    def dominant(self) -> str:
        return self.colours[0][0]

    @property
    def centre_colour(self) -> str:
        return self.centre[0][0]

    def phrase(self) -> str:
        named = [name for name, share in self.colours if share >= MIN_SHARE][:3] or [self.dominant]
        if self.colours[0][1] >= MOSTLY:
            words = f"Mostly {named[0]}" + (f", with some {' and '.join(named[1:])}" if named[1:] else "")
        else:
            words = "Colours: " + ", ".join(named)
        if self.centre_colour != self.dominant and self.centre[0][1] >= MOSTLY:
            words += f"; {self.centre_colour} in the centre"
        light = brightness_word(self.brightness)
        return f"{words}, {light}." if light else f"{words}."


class ColourAnalyser(Analyser):
    """Named dominant colours, the centre's colour and brightness (no model: always available)."""

    name = "colours"

    def _load(self) -> None:
        pass

    def _analyse(self, image: np.ndarray) -> ColourFinding:
        small = cv2.resize(image, (THUMBNAIL, THUMBNAIL), interpolation=cv2.INTER_AREA)
        names = name_pixels(small)
        third = THUMBNAIL // 3
        return ColourFinding(
            colours=shares(names),
            centre=shares(names[third : THUMBNAIL - third, third : THUMBNAIL - third]),
            brightness=float(small.max(axis=2).mean() / 255.0),
        )
