"""The session manager through an in-process pipe: routing, tools, resumption, errors."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from assistant.protocol import (
    AudioChunk,
    ClientTurns,
    CloseCode,
    Content,
    ContextChange,
    FunctionCall,
    FunctionDeclaration,
    FunctionResponse,
    Part,
    ServerMessage,
    Setup,
    TextInput,
    ToolResponses,
    VideoFrame,
)
from assistant.session import (
    BackendError,
    MemoryResumptionStore,
    ProfileResolver,
    SavedSession,
    Session,
    SessionProfile,
    SessionSettings,
    ToolContext,
    UnknownProfile,
)
from assistant.session.pipe import pipe
from tests.support.pipe_client import PipeClient
from tests.support.scripted import Script, ScriptedBackend, ScriptedSession, idle

SETUP = {"setup": {"model": "models/test", "tools": [{"functionDeclarations": [{"name": "client_tool"}]}]}}
RESUMABLE_SETUP = {"setup": {**SETUP["setup"], "sessionResumption": {}}}


class EchoTools:
    """Server-side tools for routing tests: ``echo`` answers, ``slow`` never does."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.frames: list[VideoFrame | None] = []

    def declarations(self) -> list[FunctionDeclaration]:
        return [
            FunctionDeclaration(name="echo"),
            FunctionDeclaration(name="slow"),
            FunctionDeclaration(name="client_tool"),
        ]

    def handles(self, name: str) -> bool:
        return name in {"echo", "slow", "boom", "client_tool"}

    def read_only(self, name: str) -> bool:
        return False

    async def call(self, call: FunctionCall, context: ToolContext) -> FunctionResponse:
        assert call.id is not None
        self.started.append(call.id)
        self.frames.append(context.latest_frame())
        if call.name == "boom":
            raise RuntimeError("tool bug")
        if call.name == "slow":
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.append(call.id)
                raise
        return FunctionResponse(id=call.id, name=call.name, response={"output": call.args})

    async def aclose(self) -> None:
        """Nothing outlives a call here."""


@asynccontextmanager
async def running(
    script: Script,
    *,
    setup: object = SETUP,
    store: MemoryResumptionStore | None = None,
    tools: EchoTools | None = None,
    settings: SessionSettings | None = None,
    pipe_frames: int = 64,
) -> AsyncIterator[tuple[PipeClient, ScriptedBackend, Session]]:
    backend = ScriptedBackend(script)
    server_end, client_end = pipe(pipe_frames)
    session = Session(
        server_end,
        backend,
        store=store if store is not None else MemoryResumptionStore(),
        tools=tools,
        settings=settings,
    )
    task = asyncio.create_task(session.run())
    client = PipeClient(client_end)
    if setup is not None:
        await client.send(setup)
        assert (await client.recv()).setup_complete is not None
    try:
        yield client, backend, session
    finally:
        backend.check()
        await client_end.close(1000, "test over")
        await asyncio.wait_for(task, 5)
        await backend.aclose()


async def test_setup_complete_carries_the_session_id_and_tools_are_merged() -> None:
    async with running(idle, tools=EchoTools()) as (_, backend, session):
        request = backend.sessions[0].request
        names = [d.name for d in request.setup.function_declarations()]
        # The client's own client_tool wins over the server's tool of that name.
        assert names == ["client_tool", "echo", "slow"]
        assert request.session_id == session.id


async def test_events_reach_the_backend_in_order() -> None:
    async def script(s: ScriptedSession) -> None:
        await s.expect(TextInput)
        await s.expect(ClientTurns)
        s.emit(ServerMessage.turn_done())

    async with running(script) as (client, backend, _):
        await client.send({"realtimeInput": {"text": "hi"}})
        await client.send({"clientContent": {"turns": [{"role": "user", "parts": []}], "turnComplete": False}})
        await client.send(
            {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "x"}]}], "turnComplete": True}}
        )
        assert (await client.recv()).is_turn_complete
        assert [type(e).__name__ for e in backend.sessions[0].received] == ["TextInput", "ClientTurns"]


async def test_audio_at_another_rate_is_resampled_to_16k() -> None:
    async def script(s: ScriptedSession) -> None:
        pcm = await s.audio_seconds(0.5)
        assert all(isinstance(e, AudioChunk) and e.sample_rate == 16000 for e in s.received)
        # 48 kHz in, 16 kHz out: a third of the samples (less the filter's delay).
        assert 0.45 * 32_000 <= len(pcm) <= 0.55 * 32_000
        s.emit(ServerMessage.turn_done())

    async with running(script) as (client, _, _):
        chunk = base64.b64encode(b"\x10\x00" * 960).decode()  # 20 ms at 48 kHz
        for _ in range(30):
            await client.send({"realtimeInput": {"audio": {"data": chunk, "mimeType": "audio/pcm;rate=48000"}}})
        assert (await client.recv()).is_turn_complete


async def test_client_tool_calls_go_to_the_client_and_answers_come_back_by_id() -> None:
    async def script(s: ScriptedSession) -> None:
        s.emit(ServerMessage.calls([FunctionCall(id="c1", name="client_tool", args={"a": 1})]))
        response = await s.expect(ToolResponses)
        assert response.responses[0].id == "c1"
        assert response.responses[0].response == {"ok": True}
        s.emit(ServerMessage.turn_done())

    async with running(script) as (client, _, session):
        call = await client.recv()
        assert call.tool_call is not None and call.tool_call.function_calls[0].id == "c1"
        # An answer to a call that was never made is ignored, not forwarded.
        await client.send({"toolResponse": {"functionResponses": [{"id": "nope", "name": "x", "response": {}}]}})
        await client.send(
            {"toolResponse": {"functionResponses": [{"id": "c1", "name": "client_tool", "response": {"ok": True}}]}}
        )
        assert (await client.recv()).is_turn_complete
        assert session.conversation.turns[-1].parts[0].function_response is not None


async def test_server_tool_calls_run_in_the_server_and_never_reach_the_client() -> None:
    tools = EchoTools()

    async def script(s: ScriptedSession) -> None:
        await s.expect(VideoFrame)
        s.emit(ServerMessage.calls([FunctionCall(name="echo", args={"x": 2}), FunctionCall(id="u1", name="missing")]))
        answers = {}
        for _ in range(2):
            for response in (await s.expect(ToolResponses)).responses:
                answers[response.name] = response
        assert answers["echo"].response == {"output": {"x": 2}}
        assert answers["echo"].id and answers["echo"].id.startswith("call-")  # the session gave it an id
        assert answers["missing"].response == {"error": "there is no tool named missing"}
        s.emit(ServerMessage.model_text("done"), ServerMessage.turn_done())

    async with running(script, tools=tools) as (client, _, _):
        jpeg = base64.b64encode(b"\xff\xd8\xff\xe0frame").decode()
        await client.send({"realtimeInput": {"video": {"data": jpeg, "mimeType": "image/jpeg"}}})
        first = await client.recv()
        assert first.tool_call is None and first.server_content is not None
        assert (await client.recv()).is_turn_complete
        # Tools that look see the newest frame the client sent.
        assert tools.frames == [VideoFrame(b"\xff\xd8\xff\xe0frame")]


async def test_a_crashing_server_tool_is_reported_to_the_model() -> None:
    async def script(s: ScriptedSession) -> None:
        s.emit(ServerMessage.calls([FunctionCall(id="b1", name="boom")]))
        [response] = (await s.expect(ToolResponses)).responses
        assert response.response == {"error": "boom failed"}
        s.emit(ServerMessage.turn_done())

    async with running(script, tools=EchoTools()) as (client, _, _):
        assert (await client.recv()).is_turn_complete


async def test_cancellation_reaches_server_tasks_and_client_calls() -> None:
    tools = EchoTools()

    async def script(s: ScriptedSession) -> None:
        s.emit(ServerMessage.calls([FunctionCall(id="s1", name="slow"), FunctionCall(id="c1", name="client_tool")]))
        while "s1" not in tools.started:
            await asyncio.sleep(0)
        s.emit(ServerMessage.interrupted_turn(), ServerMessage.cancel_calls(["s1", "c1"]), ServerMessage.turn_done())

    async with running(script, tools=tools) as (client, _, _):
        assert (await client.recv()).tool_call is not None
        assert (await client.recv()).is_interrupted
        cancellation = await client.recv()
        # Only the client's call is named to the client; the server task is cancelled in place.
        assert cancellation.tool_call_cancellation is not None
        assert cancellation.tool_call_cancellation.ids == ["c1"]
        assert (await client.recv()).is_turn_complete
        assert tools.cancelled == ["s1"]


async def test_barge_in_flushes_queued_reply_audio() -> None:
    release = asyncio.Event()

    async def script(s: ScriptedSession) -> None:
        await release.wait()
        s.emit(*[ServerMessage.model_audio(b"\x00\x00" * 480) for _ in range(20)])
        s.emit(ServerMessage.output_transcript("Hello"), ServerMessage.interrupted_turn(), ServerMessage.turn_done())

    # A one-frame pipe stands for a client that reads slowly: the reply piles up in the session.
    async with running(script, pipe_frames=1) as (client, _, session):
        release.set()
        while not session.stats.flushed_on_interrupt:
            await asyncio.sleep(0.01)
        kinds = []
        while True:
            message = await client.recv()
            kinds.append("audio" if message.audio_parts() else "other")
            if message.is_turn_complete:
                break
        # Whatever audio had not reached the pipe was dropped; transcripts were kept.
        assert session.stats.flushed_on_interrupt > 0
        assert kinds.count("other") == 3


async def test_reply_order_holds_across_writing_through_and_queueing() -> None:
    release = asyncio.Event()

    async def script(s: ScriptedSession) -> None:
        await release.wait()
        s.emit(*[ServerMessage.model_audio(bytes([n, 0]) * 480) for n in range(12)])
        s.emit(ServerMessage.output_transcript("Hello"), ServerMessage.turn_done())

    # A two-frame pipe: the first messages are written through, the rest wait in the queue behind them.
    async with running(script, pipe_frames=2) as (client, _, session):
        release.set()
        while not len(session.outbound):
            await asyncio.sleep(0.01)
        heard = []
        while True:
            message = await client.recv()
            heard.append(message.audio_parts()[0].data[0] if message.audio_parts() else "other")
            if message.is_turn_complete:
                break
        assert heard == [*range(12), "other", "other"]
        assert session.outbound.high_water > 0 and not session.outbound.dropped


async def test_resumption_handle_after_each_turn_and_resume_continues_history() -> None:
    store = MemoryResumptionStore()

    async def first(s: ScriptedSession) -> None:
        for answer in ("Four.", "Six."):
            await s.expect(TextInput)
            s.emit(ServerMessage.output_transcript(answer), ServerMessage.turn_done())

    async with running(first, setup=RESUMABLE_SETUP, store=store) as (client, _, _):
        handles = []
        for question in ("two plus two?", "three plus three?"):
            await client.send({"realtimeInput": {"text": question}})
            transcript = (await client.recv()).server_content
            assert transcript is not None and transcript.output_transcription is not None
            assert (await client.recv()).is_turn_complete
            update = (await client.recv()).session_resumption_update
            assert update is not None and update.resumable and update.new_handle
            handles.append(update.new_handle)
        assert len(set(handles)) == 2
        # The superseded handle is gone; only the newest resumes.
        assert await store.load(handles[0]) is None

    async def resumed(s: ScriptedSession) -> None:
        await s.closed.wait()

    setup = {"setup": {"model": "models/test", "sessionResumption": {"handle": handles[-1]}}}
    async with running(resumed, setup=setup, store=store) as (_, backend, session):
        request = backend.sessions[0].request
        assert [(turn.role, turn.text()) for turn in request.history] == [
            ("user", "two plus two?"),
            ("model", "Four."),
            ("user", "three plus three?"),
            ("model", "Six."),
        ]
        # The saved configuration comes back too: the client tool is still declared.
        assert [d.name for d in request.setup.function_declarations()] == ["client_tool"]
        assert session.stats.turns == 2


class GatedStore(MemoryResumptionStore):
    """A store whose saves wait until the test opens the gate, as a slow Redis would."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.saving: list[str] = []

    async def save(self, handle: str, saved: SavedSession, ttl_s: float) -> None:
        self.saving.append(handle)
        await self.gate.wait()
        await super().save(handle, saved, ttl_s)


async def test_a_slow_store_never_holds_up_the_reply_and_saves_land_in_order() -> None:
    store = GatedStore()

    async def script(s: ScriptedSession) -> None:
        for answer in ("Four.", "Six."):
            await s.expect(TextInput)
            s.emit(ServerMessage.output_transcript(answer), ServerMessage.turn_done())
        await s.closed.wait()

    async with running(script, setup=RESUMABLE_SETUP, store=store) as (client, _, _):
        for question in ("two plus two?", "three plus three?"):
            await client.send({"realtimeInput": {"text": question}})
            assert (await client.recv()).server_content is not None
            assert (await client.recv()).is_turn_complete  # while the turn's save still waits for the store
        assert len(store.saving) == 1  # one save at a time: the second waits behind the first
        store.gate.set()
        updates = [(await client.recv()).session_resumption_update for _ in range(2)]
        handles = [update.new_handle for update in updates if update is not None and update.resumable]
        assert len(handles) == 2 and store.saving == handles  # in the order the turns completed
        assert await store.load(handles[0]) is None  # the superseded handle was retired after its successor
        assert await store.load(handles[1]) is not None


async def test_unknown_resumption_handle_is_refused() -> None:
    setup = {"setup": {"model": "m", "sessionResumption": {"handle": "forged"}}}
    async with running(idle, setup=None) as (client, _, _):
        await client.send(setup)
        closed = await client.closed()
        assert closed.code == CloseCode.INVALID_ARGUMENT
        assert "handle is unknown or expired" in closed.reason


async def test_handles_expire() -> None:
    now = [1000.0]
    store = MemoryResumptionStore(clock=lambda: now[0])

    async def script(s: ScriptedSession) -> None:
        await s.expect(TextInput)
        s.emit(ServerMessage.turn_done())

    async with running(script, setup=RESUMABLE_SETUP, store=store, settings=SessionSettings(handle_ttl_s=60)) as (
        client,
        _,
        _,
    ):
        await client.send({"realtimeInput": {"text": "x"}})
        await client.recv()
        handle = (await client.recv()).session_resumption_update.new_handle  # type: ignore[union-attr]
    assert handle and await store.load(handle) is not None
    now[0] += 61
    assert await store.load(handle) is None


@pytest.mark.parametrize(
    ("first", "code", "reason"),
    [
        ({"realtimeInput": {"text": "hi"}}, 1007, "realtimeInput before setup"),
        ("nonsense", 1007, "not valid JSON"),
    ],
)
async def test_first_message_must_be_setup(first: object, code: int, reason: str) -> None:
    async with running(idle, setup=None) as (client, _, _):
        await (client.end.send(first) if isinstance(first, str) else client.send(first))
        closed = await client.closed()
        assert closed.code == code and reason in closed.reason


async def test_no_setup_in_time_is_a_policy_close() -> None:
    async with running(idle, setup=None, settings=SessionSettings(setup_timeout_s=0.05)) as (client, _, _):
        closed = await client.closed()
        assert closed.code == CloseCode.POLICY_VIOLATION and "no setup message" in closed.reason


async def test_backend_errors_close_with_their_code_and_reason() -> None:
    async def script(s: ScriptedSession) -> None:
        s.fail(BackendError("API key not valid. Please pass a valid API key.", CloseCode.POLICY_VIOLATION))

    async with running(script) as (client, _, _):
        closed = await client.closed()
        assert (closed.code, closed.reason) == (1008, "API key not valid. Please pass a valid API key.")


async def test_backend_that_cannot_open_closes_the_handshake() -> None:
    backend = ScriptedBackend(idle, open_error=BackendError("model not found", CloseCode.POLICY_VIOLATION))
    server_end, client_end = pipe()
    session = Session(server_end, backend, store=MemoryResumptionStore())
    task = asyncio.create_task(session.run())
    await PipeClient(client_end).send(SETUP)
    closed = await PipeClient(client_end).closed()
    await task
    assert (closed.code, closed.reason) == (1008, "model not found")


async def test_backend_ending_flushes_then_closes_normally() -> None:
    async def script(s: ScriptedSession) -> None:
        s.emit(ServerMessage.model_text("bye"), ServerMessage.turn_done())
        s.end()

    async with running(script) as (client, _, _):
        assert (await client.recv()).server_content is not None
        assert (await client.recv()).is_turn_complete
        closed = await client.closed()
        assert closed.code == 1000


async def test_client_disconnect_mid_turn_releases_the_backend_and_tools() -> None:
    tools = EchoTools()

    async def script(s: ScriptedSession) -> None:
        s.emit(ServerMessage.calls([FunctionCall(id="s1", name="slow")]))
        await s.closed.wait()

    backend = ScriptedBackend(script)
    server_end, client_end = pipe()
    session = Session(server_end, backend, store=MemoryResumptionStore(), tools=tools)
    task = asyncio.create_task(session.run())
    client = PipeClient(client_end)
    await client.send(SETUP)
    await client.recv()
    while "s1" not in tools.started:
        await asyncio.sleep(0.01)
    await client_end.close(1001, "tab closed")
    await asyncio.wait_for(task, 5)
    assert backend.sessions[0].closed.is_set()
    assert tools.cancelled == ["s1"]
    await backend.aclose()


async def test_context_update_keeps_the_server_tools_and_moves_client_routing() -> None:
    async def script(s: ScriptedSession) -> None:
        change = await s.expect(ContextChange)
        assert change.update.tools is not None
        names = [d.name for tool in change.update.tools for d in tool.function_declarations or []]
        assert names == ["new_client_tool", "echo", "slow", "client_tool"]
        s.emit(ServerMessage.calls([FunctionCall(id="n1", name="new_client_tool")]))
        await s.closed.wait()

    async with running(script, tools=EchoTools()) as (client, _, session):
        update = {"contextUpdate": {"tools": [{"functionDeclarations": [{"name": "new_client_tool"}]}]}}
        await client.send(update)
        call = await client.recv()
        assert call.tool_call is not None and call.tool_call.function_calls[0].name == "new_client_tool"
        assert session.client_setup is not None
        assert [d.name for d in session.client_setup.function_declarations()] == ["new_client_tool"]


async def profiles(name: str | None) -> SessionProfile | None:
    if name is None:
        return None
    if name != "owl":
        raise UnknownProfile(f"unknown persona {name!r}; this server has: owl")

    def apply(setup: Setup) -> Setup:
        return setup.model_copy(update={"system_instruction": Content(parts=[Part(text="You are an owl.")])})

    return SessionProfile("owl", apply=apply, offers_tool=lambda tool: tool != "slow", knowledge_collection="birds")


async def test_a_profile_adjusts_the_setup_tools_and_survives_resumption() -> None:
    tools = EchoTools()
    store = MemoryResumptionStore()

    async def script(s: ScriptedSession) -> None:
        setup = s.request.setup
        assert setup.system_instruction is not None and setup.system_instruction.text() == "You are an owl."
        assert "slow" not in [d.name for d in setup.function_declarations()]
        await s.expect(TextInput)
        s.emit(ServerMessage.calls([FunctionCall(id="s1", name="slow"), FunctionCall(id="e1", name="echo")]))
        answers = {}
        for _ in range(2):
            for response in (await s.expect(ToolResponses)).responses:
                answers[response.id] = response.response
        assert answers["s1"] == {"error": "there is no tool named slow"}  # not offered to this persona
        assert answers["e1"] == {"output": {}}
        s.emit(ServerMessage.turn_done())
        await s.closed.wait()

    backend = ScriptedBackend(script)
    server_end, client_end = pipe()
    session = Session(server_end, backend, store=store, tools=tools, profiles=profiles, requested_profile="owl")
    task = asyncio.create_task(session.run())
    client = PipeClient(client_end)
    await client.send(RESUMABLE_SETUP)
    await client.recv()
    await client.send({"realtimeInput": {"text": "hoo?"}})
    assert (await client.recv()).is_turn_complete
    update = (await client.recv()).session_resumption_update
    assert update is not None and update.new_handle
    await client_end.close(1000, "bye")
    await asyncio.wait_for(task, 5)
    backend.check()

    # A resumed connection that names no persona keeps the one the conversation started with.
    resumed = ScriptedBackend(lambda s: s.closed.wait())
    server_end, client_end = pipe()
    session = Session(server_end, resumed, store=store, tools=tools, profiles=profiles)
    task = asyncio.create_task(session.run())
    await PipeClient(client_end).send({"setup": {"model": "m", "sessionResumption": {"handle": update.new_handle}}})
    await PipeClient(client_end).recv()
    assert session.profile is not None and session.profile.knowledge_collection == "birds"
    assert resumed.sessions[0].request.setup.system_instruction.text() == "You are an owl."  # type: ignore[union-attr]
    await client_end.close(1000, "bye")
    await asyncio.wait_for(task, 5)
    await backend.aclose()
    await resumed.aclose()


@pytest.mark.parametrize(
    ("resolver", "reason"),
    [(profiles, "unknown persona 'hawk'; this server has: owl"), (None, "this server has no personas")],
)
async def test_an_unknown_persona_is_a_policy_close(resolver: ProfileResolver | None, reason: str) -> None:
    server_end, client_end = pipe()
    backend = ScriptedBackend(idle)
    session = Session(server_end, backend, store=MemoryResumptionStore(), profiles=resolver, requested_profile="hawk")
    task = asyncio.create_task(session.run())
    await PipeClient(client_end).send(SETUP)
    closed = await PipeClient(client_end).closed()
    await task
    assert closed.code == CloseCode.POLICY_VIOLATION and reason in closed.reason
