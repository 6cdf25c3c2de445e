"""A client function declared NON_BLOCKING through the real local stack: the turn does not wait for it."""

from __future__ import annotations

import time

import pytest
from google.genai import types

from assistant.backends.local import LocalBackend
from tests.conftest import Certificate, ServerFactory
from tests.test_local_e2e import CALCULATE, SharedBackend, local_stack, offline, sdk_client
from tests.test_server_sdk import turn

pytestmark = pytest.mark.slow
__all__ = ["local_stack", "offline"]  # fixtures


def text_of(messages: list[types.LiveServerMessage]) -> str:
    return "".join(
        part.text or ""
        for m in messages
        if m.server_content and m.server_content.model_turn
        for part in m.server_content.model_turn.parts or []
    )


async def test_a_non_blocking_client_function_is_announced_when_it_answers(
    live_server: ServerFactory, tls_certificate: Certificate, local_stack: LocalBackend
) -> None:
    calculate = CALCULATE.model_copy(update={"behavior": types.Behavior.NON_BLOCKING})
    config = types.LiveConnectConfig(
        response_modalities=[types.Modality.TEXT], tools=[types.Tool(function_declarations=[calculate])]
    )
    async with live_server(
        SharedBackend(local_stack), tls_cert=tls_certificate.cert, tls_key=tls_certificate.key
    ) as server:
        client = sdk_client(server.port, tls_certificate)
        async with client.aio.live.connect(model="local", config=config) as session:
            await session.send_realtime_input(text="what's twelve times seven")
            started = time.monotonic()
            first = await turn(session)
            took = time.monotonic() - started
            [call] = [c for m in first if m.tool_call for c in m.tool_call.function_calls or []]
            assert first[-1].server_content is not None and first[-1].server_content.turn_complete
            assert took < 15, f"the turn waited {took:.0f} s for a NON_BLOCKING function"
            answer = types.FunctionResponse(
                id=call.id,
                name=call.name,
                response={"output": {"expression": "12*7", "result": 84}},
                scheduling=types.FunctionResponseScheduling.WHEN_IDLE,
            )
            await session.send_tool_response(function_responses=[answer])
            second = await turn(session)
    assert text_of(first).strip() == ""
    assert text_of(second).strip() == "12 times 7 is 84."
