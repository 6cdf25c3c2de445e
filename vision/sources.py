"""Where frames come from: a camera, a video file, a folder of images, the screen.

Every source has the same two-step interface that OpenCV cameras have:
``grab()`` advances to the next frame and says when it was captured, and
``retrieve()`` decodes it. The split is what lets the sampler drop 29 of a
camera's 30 frames a second without decoding them. ``frames()`` yields every
frame for callers that want them all.

Timestamps are seconds on the source's clock: ``time.monotonic`` (or an
injected clock) for live sources, the position in the media for files and
folders, so a recording replays with the same sampling decisions every time.
"""

from __future__ import annotations

import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import cv2
import numpy as np

from assistant.errors import AssistantError
from vision.frames import Frame

Clock = Callable[[], float]
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


class FrameSourceError(AssistantError, RuntimeError):
    """A source cannot be opened or stopped delivering; the message says which and why."""


class FrameSource(ABC):
    """A stream of timestamped frames. Use from one thread at a time."""

    name: str = "source"

    @abstractmethod
    def grab(self) -> float | None:
        """Advance to the next frame and return its timestamp; None when the source has ended.

        Decodes nothing where the source allows it; blocks until a frame exists.
        """

    @abstractmethod
    def retrieve(self) -> Frame:
        """The frame the last ``grab()`` advanced to, decoded."""

    def read(self) -> Frame | None:
        """The next frame, decoded; None at the end."""
        return None if self.grab() is None else self.retrieve()

    def frames(self) -> Iterator[Frame]:
        """Every frame until the source ends."""
        while (frame := self.read()) is not None:
            yield frame

    @abstractmethod
    def close(self) -> None:
        """Release the device or file. Idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


class _CaptureSource(FrameSource):
    """Shared by cameras and video files: both are an OpenCV ``VideoCapture``."""

    def __init__(self, capture: cv2.VideoCapture, name: str) -> None:
        self._capture = capture
        self.name = name
        self._grabbed_at: float | None = None

    def retrieve(self) -> Frame:
        if self._grabbed_at is None:
            raise FrameSourceError(f"{self.name}: retrieve() before grab()")
        ok, image = self._capture.retrieve()
        if not ok or image is None:
            raise FrameSourceError(f"{self.name}: the grabbed frame could not be decoded")
        return Frame(image, self._grabbed_at, self.name)

    def close(self) -> None:
        self._capture.release()


class CameraSource(_CaptureSource):
    """A camera by index (``0``) or device path (``/dev/video2``), through OpenCV."""

    def __init__(
        self,
        device: int | str = 0,
        *,
        width: int | None = None,
        height: int | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        by_path = isinstance(device, str)
        if by_path and not os.path.exists(str(device)):
            raise FrameSourceError(f"no camera at {device}: the device file does not exist")
        backend = cv2.CAP_V4L2 if by_path and str(device).startswith("/dev/video") else cv2.CAP_ANY
        capture = cv2.VideoCapture(device, backend)
        if not capture.isOpened():
            raise FrameSourceError(
                f"cannot open camera {device!r}: no such camera, or it is in use or not permitted "
                "(on Linux: is the user in the 'video' group?)"
            )
        if width:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        # The sampler wants the newest frame, not one queued seconds ago.
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        super().__init__(capture, f"camera {device}")
        self._clock = clock

    def grab(self) -> float | None:
        if not self._capture.grab():
            raise FrameSourceError(f"{self.name} stopped delivering frames (unplugged, or taken by another program?)")
        self._grabbed_at = self._clock()
        return self._grabbed_at


class VideoFileSource(_CaptureSource):
    """A video file, as fast as it decodes, or paced in real time (``realtime=True``) like a camera."""

    def __init__(
        self,
        path: str | Path,
        *,
        realtime: bool = False,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        path = Path(path)
        if not path.is_file():
            raise FrameSourceError(f"no video file at {path}")
        capture = cv2.VideoCapture(str(path), cv2.CAP_ANY)
        if not capture.isOpened():
            raise FrameSourceError(f"cannot open {path} as a video: unknown container or codec")
        super().__init__(capture, str(path))
        self._realtime = realtime
        self._clock = clock
        self._sleep = sleep
        self._started_at: float | None = None

    def grab(self) -> float | None:
        if not self._capture.grab():
            return None
        media_time = self._capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        if not self._realtime:
            self._grabbed_at = media_time
            return media_time
        if self._started_at is None:
            self._started_at = self._clock() - media_time
        self._grabbed_at = self._started_at + media_time
        delay = self._grabbed_at - self._clock()
        if delay > 0:
            self._sleep(delay)
        return self._grabbed_at


class ImageFolderSource(FrameSource):
    """Images from a folder (sorted by name) or a list of paths, one every ``interval_s`` of media time."""

    def __init__(
        self, images: str | Path | Sequence[str | Path], *, interval_s: float = 1.0, start: float = 0.0
    ) -> None:
        if isinstance(images, str | Path):
            folder = Path(images)
            if not folder.is_dir():
                raise FrameSourceError(f"no folder at {folder}")
            paths = sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
            if not paths:
                raise FrameSourceError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            self.name = str(folder)
        else:
            paths = [Path(path) for path in images]
            self.name = f"{len(paths)} images"
        self._paths = paths
        self._interval = interval_s
        self._start = start
        self._index = -1

    def grab(self) -> float | None:
        if self._index + 1 >= len(self._paths):
            return None
        self._index += 1
        return self._start + self._index * self._interval

    def retrieve(self) -> Frame:
        if self._index < 0:
            raise FrameSourceError(f"{self.name}: retrieve() before grab()")
        path = self._paths[self._index]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise FrameSourceError(f"{path} is not a readable image")
        return Frame(image, self._start + self._index * self._interval, str(path))

    def close(self) -> None:
        """Nothing to release: each image is read when retrieved."""


class ScreenSource(FrameSource):
    """The screen (one monitor, or a region of it) through mss.

    A screen has no frame clock, so ``grab`` waits ``poll_interval_s`` between
    captures; the sampler's rate cap decides which captures are kept. The
    capture object is made on first use, in the thread that uses it, because
    X11 connections must not cross threads.
    """

    def __init__(
        self,
        monitor: int = 1,
        *,
        region: tuple[int, int, int, int] | None = None,
        poll_interval_s: float = 0.1,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        try:
            import mss  # noqa: F401  (fail here, at open, not at the first frame)
        except ModuleNotFoundError as error:
            raise FrameSourceError("screen capture needs mss: pip install 'live-assistant[vision]'") from error
        self.name = f"screen {monitor}" if region is None else f"screen {monitor} region {region}"
        self._monitor = monitor
        self._region = region
        self._poll_interval = poll_interval_s
        self._clock = clock
        self._sleep = sleep
        self._grabber: Any = None
        self._owner: int | None = None
        self._grabbed_at: float | None = None

    def _open(self) -> Any:
        import mss

        if self._grabber is not None and self._owner == threading.get_ident():
            return self._grabber
        self.close()
        try:
            grabber = mss.MSS()
            monitors = grabber.monitors
        except mss.ScreenShotError as error:
            display = os.environ.get("DISPLAY")
            where = f"DISPLAY={display}" if display else "DISPLAY is not set"
            raise FrameSourceError(f"cannot capture the screen ({where}): {error}") from error
        if not 0 <= self._monitor < len(monitors):
            grabber.close()
            raise FrameSourceError(f"no monitor {self._monitor}: this screen has {len(monitors) - 1} (0 means all)")
        self._grabber, self._owner = grabber, threading.get_ident()
        return grabber

    def grab(self) -> float | None:
        now = self._clock()
        if self._grabbed_at is not None and now < self._grabbed_at + self._poll_interval:
            self._sleep(self._grabbed_at + self._poll_interval - now)
            now = self._clock()
        self._grabbed_at = now
        return now

    def retrieve(self) -> Frame:
        if self._grabbed_at is None:
            raise FrameSourceError(f"{self.name}: retrieve() before grab()")
        grabber = self._open()
        area = grabber.monitors[self._monitor]
        if self._region is not None:
            left, top, width, height = self._region
            area = {"left": area["left"] + left, "top": area["top"] + top, "width": width, "height": height}
        shot = grabber.grab(area)
        pixels = np.frombuffer(shot.raw, dtype=np.uint8).reshape(shot.height, shot.width, 4)
        return Frame(cv2.cvtColor(pixels, cv2.COLOR_BGRA2BGR), self._grabbed_at, self.name)

    def close(self) -> None:
        if self._grabber is not None:
            self._grabber.close()
            self._grabber = self._owner = None


def open_source(spec: str, *, clock: Clock = time.monotonic) -> FrameSource:
    """A source from a short description, as a command line would take it.

    ``camera`` or ``camera:N`` (index), ``camera:/dev/videoN`` or ``/dev/videoN``,
    ``screen`` or ``screen:N`` (monitor; 0 is all of them), a video file, an image
    file, or a folder of images.
    """
    kind, _, argument = spec.partition(":")
    if kind == "camera":
        device: int | str = int(argument) if argument.isdigit() else (argument or 0)
        return CameraSource(device, clock=clock)
    if kind == "screen":
        if argument and not argument.isdigit():
            raise FrameSourceError(f"screen:{argument}: expected a monitor number")
        return ScreenSource(int(argument or 1), clock=clock)
    if spec.startswith("/dev/video"):
        return CameraSource(spec, clock=clock)
    path = Path(spec)
    if path.is_dir():
        return ImageFolderSource(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        if not path.is_file():
            raise FrameSourceError(f"no image at {path}")
        return ImageFolderSource([path])
    if path.is_file():
        return VideoFileSource(path)
    raise FrameSourceError(f"{spec!r} is not a camera, a screen, a video file, an image or a folder")
