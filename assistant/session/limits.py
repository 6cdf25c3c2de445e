"""What a session may hold, in bytes and pixels, and how its contents are weighed.

A hostile or stalled client must not grow server memory beyond what the
operator configured, so every buffer a client can fill is bounded in bytes,
not in messages: a queue of 250 small audio chunks and a queue of 250
messages of 8 MiB are not the same risk. ``approx_bytes`` weighs anything
that crosses a session (client events, server messages, history turns) by
the payload it holds: PCM, image and text bytes, plus a small fixed cost
per object. It is an estimate of memory, cheap enough to run on every
20 ms audio chunk.

Images are checked by their header before anything decodes them: a 200 kB
JPEG can claim 30000 x 30000 pixels and decode to 2.7 GB.
"""

from __future__ import annotations

import dataclasses
import io
import sys
import warnings
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from assistant.errors import AssistantError
from assistant.protocol import AudioChunk, ClientEvent, ClientTurns, CloseCode, ProtocolError, ReplyAudio, VideoFrame
from assistant.protocol.server_events import base64_size
from assistant.session.resumption import DEFAULT_HANDLE_TTL_S

# 5 s of 24 kHz 16-bit mono reply audio (input audio is 16 kHz, so less), plus a few 256 KiB frames.
AUDIO_BUDGET_BYTES = 5 * 24_000 * 2
FRAME_BUDGET_BYTES = 4 * 256 * 1024
DEFAULT_QUEUE_BYTES = AUDIO_BUDGET_BYTES + FRAME_BUDGET_BYTES
# Text and images kept per conversation for resumption and re-seeding: hours of spoken text.
DEFAULT_HISTORY_BYTES = 2 * 1024 * 1024
# 4K UHD: 24 MiB decoded as 8-bit BGR.
DEFAULT_MAX_IMAGE_PIXELS = 3840 * 2160
# What every object costs besides its payload (headers, references, small fields).
OBJECT_OVERHEAD_BYTES = 64

# Formats clients send frames in (the Live protocol's image/jpeg, and what browsers capture).
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")


def approx_bytes(value: object) -> int:
    """The memory ``value`` holds: payload bytes plus a fixed cost per object, walked without recursion.

    Walks pydantic models (the fields that are set), dataclasses, dicts,
    lists and tuples; a deeply nested tool response cannot exhaust the stack.
    """
    total = 0
    pending: list[Any] = [value]
    while pending:
        item = pending.pop()
        if item is None:
            continue  # unset fields of a model cost nothing worth counting
        total += OBJECT_OVERHEAD_BYTES
        if isinstance(item, (str, bytes, bytearray)):
            total += sys.getsizeof(item)
        elif isinstance(item, (memoryview, AudioChunk)):
            total += item.nbytes
        elif isinstance(item, BaseModel):
            pending.extend(item.__dict__.values())
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            pending.extend(getattr(item, field.name) for field in dataclasses.fields(item))
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            pending.extend(item)
    return total


def event_bytes(event: object) -> int:
    """``approx_bytes`` of a queued event, free for audio: its length, read without decoding its base64."""
    if isinstance(event, ReplyAudio):
        return OBJECT_OVERHEAD_BYTES + base64_size(event.data)
    if isinstance(event, AudioChunk):
        return OBJECT_OVERHEAD_BYTES + event.nbytes
    return approx_bytes(event)


class ImageTooLarge(AssistantError, ValueError):
    """An image whose header claims more pixels than the server decodes."""

    def __init__(self, size: str, max_pixels: int) -> None:
        super().__init__(f"image is {size} pixels; the server takes at most {max_pixels} (--max-image-pixels)")
        self.max_pixels = max_pixels


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the image's header, or None when it is not a JPEG, PNG, WebP or BMP.

    Pillow's ``open`` is lazy: it parses the header and decodes no pixels.
    Raises Pillow's ``DecompressionBombError`` for absurd sizes.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
                return int(image.size[0]), int(image.size[1])
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def check_image_pixels(data: bytes, max_pixels: int) -> tuple[int, int] | None:
    """``data``'s (width, height); ``ImageTooLarge`` when its header claims more than ``max_pixels`` pixels.

    An image whose header cannot be read passes (None): whatever decodes it
    later refuses it as not an image.
    """
    from PIL import Image

    try:
        size = image_dimensions(data)
    except Image.DecompressionBombError:
        raise ImageTooLarge(f"over {2 * (Image.MAX_IMAGE_PIXELS or 0)}", max_pixels) from None
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageTooLarge(f"{size[0]}x{size[1]}", max_pixels)
    return size


def check_event_images(event: ClientEvent, max_pixels: int) -> None:
    """Refuse (1009) a client event whose image header claims more pixels than the server decodes."""
    if isinstance(event, VideoFrame):
        images = [("realtimeInput.video", event.image)]
    elif isinstance(event, ClientTurns):
        images = [
            (f"clientContent.turns[{turn}].parts[{index}].inlineData", part.inline_data.data)
            for turn, content in enumerate(event.turns)
            for index, part in enumerate(content.parts or [])
            if part.inline_data is not None and part.inline_data.mime_type.startswith("image/")
        ]
    else:
        return
    for where, data in images:
        try:
            check_image_pixels(data, max_pixels)
        except ImageTooLarge as exc:
            raise ProtocolError(f"{where}: {exc}; send smaller frames", CloseCode.MESSAGE_TOO_BIG) from None


@dataclass(slots=True)
class SessionSettings:
    """Bounds and timeouts of one session; the defaults suit 20 ms audio chunks."""

    inbound_queue_size: int = 250  # 5 s of 20 ms chunks before audio is shed
    outbound_queue_size: int = 250
    inbound_queue_bytes: int = DEFAULT_QUEUE_BYTES  # 5 s of audio plus a few frames, whichever bound comes first
    outbound_queue_bytes: int = DEFAULT_QUEUE_BYTES
    history_bytes: int = DEFAULT_HISTORY_BYTES  # text and images kept for resumption, oldest turns dropped first
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS  # larger client images close the session with 1009
    setup_timeout_s: float = 30.0
    handle_ttl_s: float = DEFAULT_HANDLE_TTL_S
    drain_timeout_s: float = 5.0
