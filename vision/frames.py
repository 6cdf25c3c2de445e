"""Frames and the few image operations every part of ``vision`` shares.

Images are OpenCV's convention throughout: ``numpy.uint8`` arrays of shape
(height, width, 3) in BGR order. Keeping one convention avoids a colour-order
bug at every seam; analysers that need RGB convert at their own edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from assistant.errors import AssistantError
from assistant.session.limits import DEFAULT_MAX_IMAGE_PIXELS, ImageTooLarge, check_image_pixels

DEFAULT_MAX_SIDE = 1024
DEFAULT_JPEG_QUALITY = 80


class ImageDecodeError(AssistantError, ValueError):
    """Bytes that should hold an image do not decode to one."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured image and when it was captured, in seconds on its source's clock."""

    image: np.ndarray
    timestamp: float
    source: str = ""

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.image.shape[1], self.image.shape[0]


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Any 8-bit grey, BGR or BGRA array as 3-channel BGR; a clear error for anything else."""
    if image.dtype != np.uint8:
        raise ImageDecodeError(f"expected an 8-bit image, got dtype {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    raise ImageDecodeError(f"expected a (height, width[, 3 or 4]) image, got shape {image.shape}")


def decode_image(data: bytes, *, reduce: int = 1, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode JPEG, PNG, WebP or BMP bytes to BGR.

    ``reduce`` (1, 2, 4 or 8) decodes at that fraction of the size: JPEG
    decoders scale in the DCT domain, so a 1/8 thumbnail costs a fraction of a
    full decode. That is what makes change gating on relayed JPEG bytes cheap.

    The header is read first (``ImageDecodeError`` for an image of more than
    ``max_pixels``, or in another format): client bytes never reach OpenCV's
    decoders with a size they have not declared.
    """
    flags = {
        1: cv2.IMREAD_COLOR,
        2: cv2.IMREAD_REDUCED_COLOR_2,
        4: cv2.IMREAD_REDUCED_COLOR_4,
        8: cv2.IMREAD_REDUCED_COLOR_8,
    }
    if reduce not in flags:
        raise ValueError(f"reduce must be 1, 2, 4 or 8, not {reduce}")
    if not data:
        raise ImageDecodeError("empty image data")
    try:
        size = check_image_pixels(data, max_pixels)
    except ImageTooLarge as exc:
        raise ImageDecodeError(str(exc)) from None
    if size is None:
        raise ImageDecodeError(f"{len(data)} bytes that start {data[:8]!r} are not a JPEG, PNG, WebP or BMP image")
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags[reduce])
    if image is None:
        raise ImageDecodeError(f"{len(data)} bytes that start {data[:8]!r} are not a JPEG, PNG, WebP or BMP image")
    return image


def encode_jpeg(image: np.ndarray, quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
    """Baseline JPEG at ``quality`` (1-100), the format Live clients send."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be 1..100, not {quality}")
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ImageDecodeError(f"OpenCV could not encode an image of shape {image.shape} as JPEG")
    return buffer.tobytes()


def fit_within(image: np.ndarray, max_side: int = DEFAULT_MAX_SIDE) -> np.ndarray:
    """Shrink (never enlarge) so the longest side is at most ``max_side``, keeping the aspect ratio."""
    height, width = image.shape[:2]
    longest = max(height, width)
    if longest <= max_side:
        return image
    scale = max_side / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # Area averaging is the right filter but costs 16 ms for 720p -> 1024 here; bilinear (3 ms)
    # does not alias until the image shrinks by more than half.
    interpolation = cv2.INTER_LINEAR if scale >= 0.5 else cv2.INTER_AREA
    return cv2.resize(image, size, interpolation=interpolation)
