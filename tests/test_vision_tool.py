"""``describe_view``: its contract, and a printed sentence read back through a real session.

The session test is the path the local backend will take: the google-genai
SDK sends a camera frame (the sampler's JPEG of a printed sentence) to the
real server over TLS, the model asks for ``describe_view``, the server runs
it against the session's latest frame, and the description reaches the
model. The "model" here is the scripted test backend, which relays the
description as its answer; the local backend replaces it later.
"""

from __future__ import annotations

import asyncio

import cv2
import numpy as np
import pytest
from google.genai import types

from assistant.bench.vision_costs import render_text_frame
from assistant.protocol import (
    FunctionCall,
    FunctionResponse,
    ServerMessage,
    TextInput,
    ToolResponses,
    VideoFrame,
)
from assistant.session import ToolContext
from assistant.tools import ToolRegistry
from tests.conftest import Certificate, ServerFactory
from tests.support.scripted import ScriptedBackend, ScriptedSession
from tests.test_server_sdk import sdk_client
from vision import tool
from vision.analysers.colours import ColourAnalyser
from vision.describe import ViewDescriber
from vision.frames import Frame, encode_jpeg
from vision.sampler import FrameSampler

SENTENCE = "The meeting moved to room twelve"


async def _discard(response: FunctionResponse) -> None:
    raise AssertionError("describe_view answers once, through its return value")


def context_with(frame: VideoFrame | None) -> ToolContext:
    return ToolContext(session_id="s1", send_response=_discard, latest_frame=lambda: frame)


def vision_tools() -> ToolRegistry:
    """A registry holding describe_view, as serve builds it from the entry point."""
    registry = ToolRegistry()
    registry.add(tool.describe_view_tool, source="test")
    return registry


async def test_no_frame_yet_is_an_error_the_model_can_relay() -> None:
    with pytest.raises(tool.ViewUnavailable, match="no camera or screen frame"):
        await tool.describe_view(context_with(None))
    response = await vision_tools().call(FunctionCall(id="c1", name="describe_view"), context_with(None))
    assert response.id == "c1" and response.name == "describe_view"
    assert response.response is not None and set(response.response) == {"error"}
    assert "turn on the camera or share the screen" in response.response["error"]


async def test_a_frame_that_is_not_an_image() -> None:
    frame = VideoFrame(b"\xff\xd8\xff\xe0 truncated", "image/jpeg")
    with pytest.raises(tool.ViewUnavailable) as caught:
        await tool.describe_view(context_with(frame), ViewDescriber())
    assert str(caught.value).startswith("the latest frame (image/jpeg) could not be read as an image")


async def test_success_shape_follows_the_contract() -> None:
    image = np.full((480, 640, 3), (30, 30, 220), np.uint8)
    frame = VideoFrame(encode_jpeg(image))
    describer = ViewDescriber([ColourAnalyser()])
    assert await tool.describe_view(context_with(frame), describer) == {"description": "Mostly red, bright."}


def test_declaration_takes_no_parameters() -> None:
    [declaration] = vision_tools().declarations()
    assert declaration.name == "describe_view"
    assert declaration.parameters is None  # no arguments at all, which Gemini accepts
    assert declaration.description == tool.DESCRIPTION


def printed_sentence_jpeg() -> bytes:
    """A camera frame of a printed sentence, as the sampler sends it (1024 px, JPEG 80)."""
    sampled = FrameSampler().offer(Frame(render_text_frame(SENTENCE, font=cv2.FONT_HERSHEY_DUPLEX), 0.0))
    assert sampled is not None
    return sampled.jpeg


@pytest.mark.slow
async def test_sdk_client_shows_a_sentence_and_the_model_reads_it_with_describe_view(
    live_server: ServerFactory, tls_certificate: Certificate
) -> None:
    async def script(s: ScriptedSession) -> None:
        assert tool.NAME in {d.name for d in s.request.setup.function_declarations()}
        await s.expect(VideoFrame)
        question = await s.expect(TextInput)
        assert "say" in question.text
        s.emit(ServerMessage.calls([FunctionCall(id="look-1", name=tool.NAME)]))
        (answer,) = (await s.expect(ToolResponses, timeout=120)).responses
        assert answer.id == "look-1" and answer.response is not None
        description = answer.response["output"]["description"]
        s.emit(ServerMessage.model_text(f"I can see this: {description}"), ServerMessage.turn_done())

    backend = ScriptedBackend(script)
    async with live_server(
        backend, tls_cert=str(tls_certificate.cert), tls_key=str(tls_certificate.key), tools=vision_tools()
    ) as server:
        client = sdk_client(server.port, tls_certificate)
        config = types.LiveConnectConfig(response_modalities=[types.Modality.TEXT])
        async with client.aio.live.connect(model="gemini-live-2.5-flash", config=config) as session:
            await session.send_realtime_input(video=types.Blob(data=printed_sentence_jpeg(), mime_type="image/jpeg"))
            await asyncio.sleep(0.2)  # the frame is in before the question, as a camera's would be
            await session.send_realtime_input(text="What does the paper say?")
            reply = ""
            async for message in session.receive():
                reply += message.text or ""
    backend.check()
    assert SENTENCE in reply, reply
