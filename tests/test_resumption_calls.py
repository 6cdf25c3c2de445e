"""Resumption while tool calls are out.

Gemini's rule, which the session keeps: no handle while a call is out
(``resumable: false`` at the turn's end), a handle again once it is answered.
A call still out when the server drains is saved with the conversation
instead (see test_drain.py); one out when the Gemini backend changes
connection is answered in place (see test_gemini_conversations.py).
"""

from __future__ import annotations

from assistant.protocol import FunctionCall, ServerMessage, TextInput, ToolResponses
from assistant.session import MemoryResumptionStore
from tests.support.scripted import ScriptedSession
from tests.test_session import RESUMABLE_SETUP, running


async def test_no_handle_while_a_call_is_out_and_one_once_it_is_answered() -> None:
    async def script(s: ScriptedSession) -> None:
        await s.expect(TextInput)
        s.emit(
            ServerMessage.calls([FunctionCall(id="c1", name="client_tool")]),
            ServerMessage.output_transcript("Working on it."),
            ServerMessage.turn_done(),  # a non-blocking call: the turn ends while it runs
        )
        [response] = (await s.expect(ToolResponses)).responses
        assert response.id == "c1"
        await s.closed.wait()

    store = MemoryResumptionStore()
    async with running(script, setup=RESUMABLE_SETUP, store=store) as (client, _, _):
        await client.send({"realtimeInput": {"text": "start the timer"}})
        assert (await client.recv()).tool_call is not None
        assert (await client.recv()).server_content is not None
        assert (await client.recv()).is_turn_complete
        update = (await client.recv()).session_resumption_update
        assert update is not None and update.resumable is False and update.new_handle is None
        await client.send({"toolResponse": {"functionResponses": [{"id": "c1", "response": {"output": "set"}}]}})
        update = (await client.recv()).session_resumption_update
        assert update is not None and update.resumable is True and update.new_handle
        saved = await store.load(update.new_handle)
        assert saved is not None and saved.pending_calls == {}
        assert any(part.get("functionResponse") for turn in saved.history for part in turn["parts"])
