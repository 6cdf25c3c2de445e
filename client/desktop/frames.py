"""Camera or screen frames for ``--camera N`` / ``--screen``, through the vision package's sampler.

The vision package (``vision.sources.open_source`` and
``vision.sampler.sampled_frames``) owns capture, the rate cap and the change
gate; this module only opens a source early (so a missing camera fails
before the session starts) and hands its JPEGs to the client. While the vision
package or its extra is not installed, asking for frames fails with the
install command instead of silently sending none.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from assistant.errors import AssistantError

VISION_HINT = "install it with: pip install 'live-assistant[vision]'"


class FramesUnavailable(AssistantError, RuntimeError):
    """Frames were asked for but cannot be had; the message says why and what to do."""


class FrameFeed:
    """An opened camera or screen, yielding the JPEGs worth sending (about one a second)."""

    def __init__(self, spec: str) -> None:
        try:
            from vision.sampler import sampled_frames
            from vision.sources import FrameSourceError, open_source
        except ImportError as exc:
            raise FramesUnavailable(
                f"{spec} frames need the vision extra, which is not installed ({exc}); {VISION_HINT}"
            ) from None
        try:
            self._source: Any = open_source(spec)
        except (FrameSourceError, ImportError) as exc:
            raise FramesUnavailable(f"cannot open {spec}: {exc}") from None
        self.spec = spec
        self._sampled_frames = sampled_frames

    async def jpegs(self) -> AsyncIterator[bytes]:
        async for sampled in self._sampled_frames(self._source):
            yield sampled.jpeg


def frame_spec(camera: int | None, screen: bool) -> str | None:
    """The vision source description for the command-line flags (``camera:N`` or ``screen``)."""
    if camera is not None and screen:
        raise FramesUnavailable("choose one of --camera and --screen")
    if camera is not None:
        return f"camera:{camera}"
    return "screen" if screen else None
