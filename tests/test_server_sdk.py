"""The real google-genai SDK against ``LiveServer`` over TLS, with a scripted backend."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from google import genai
from google.genai import errors, types

from assistant.protocol import (
    ActivityEnd,
    ActivityStart,
    AudioChunk,
    AudioStreamEnd,
    ClientTurns,
    ContextChange,
    FunctionCall,
    ServerMessage,
    TextInput,
    ToolResponses,
    UsageMetadata,
    VideoFrame,
)
from assistant.protocol.models import GoAway
from assistant.session import MemoryResumptionStore
from tests.conftest import Certificate, ServerFactory
from tests.support.scripted import ScriptedBackend, ScriptedSession

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
SPEECH = b"\x01\x02" * 320  # 20 ms at 16 kHz
REPLY = b"\x03\x04" * 2400  # 100 ms at 24 kHz


def sdk_client(
    port: int, certificate: Certificate, api_key: str = "test-key", api_version: str = "v1beta"
) -> genai.Client:
    return genai.Client(
        api_key=api_key,
        http_options=types.HttpOptions(
            base_url=f"https://127.0.0.1:{port}",
            api_version=api_version,
            async_client_args={"ssl": certificate.client_context()},
            client_args={"verify": certificate.client_context()},
        ),
    )


def full_config(handle: str | None = None) -> types.LiveConnectConfig:
    return types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        speech_config=types.SpeechConfig(
            voice_config=types.VoiceConfig(prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name="Kore")),
            language_code="en-US",
        ),
        system_instruction="You are a terse assistant.",
        tools=[
            types.Tool(
                function_declarations=[
                    types.FunctionDeclaration(
                        name="turn_on_lights",
                        description="Switch the lights on in a room.",
                        parameters=types.Schema(
                            type=types.Type.OBJECT,
                            properties={"room_name": types.Schema(type=types.Type.STRING)},
                            required=["room_name"],
                        ),
                    )
                ]
            )
        ],
        input_audio_transcription=types.AudioTranscriptionConfig(),
        output_audio_transcription=types.AudioTranscriptionConfig(),
        session_resumption=types.SessionResumptionConfig(handle=handle),
        realtime_input_config=types.RealtimeInputConfig(
            automatic_activity_detection=types.AutomaticActivityDetection(
                disabled=False,
                start_of_speech_sensitivity=types.StartSensitivity.START_SENSITIVITY_HIGH,
                silence_duration_ms=400,
            ),
            activity_handling=types.ActivityHandling.START_OF_ACTIVITY_INTERRUPTS,
        ),
        context_window_compression=types.ContextWindowCompressionConfig(
            trigger_tokens=20000, sliding_window=types.SlidingWindow(target_tokens=10000)
        ),
        temperature=0.4,
    )


async def turn(session: object) -> list[types.LiveServerMessage]:
    """Every message up to and including the next turnComplete."""
    return [message async for message in session.receive()]  # type: ignore[attr-defined]


async def conversation(s: ScriptedSession) -> None:
    """The backend's side of a conversation that uses every message type."""
    setup = s.request.setup
    assert setup.voice_name() == "Kore"
    assert setup.system_instruction is not None and setup.system_instruction.text() == "You are a terse assistant."
    [declaration] = setup.function_declarations()
    assert declaration.name == "turn_on_lights"
    assert declaration.parameters is not None and "room_name" in declaration.parameters["properties"]
    assert setup.input_audio_transcription is not None and setup.output_audio_transcription is not None
    assert setup.realtime_input_config is not None and setup.context_window_compression is not None
    assert setup.generation_config is not None and setup.generation_config.temperature == 0.4

    # Turn 1: audio, a video frame, text and the activity signals, then a spoken reply.
    audio = await s.expect(AudioChunk, skip_audio=False)
    assert audio.pcm == SPEECH and audio.sample_rate == 16000
    assert (await s.expect(VideoFrame)).image == JPEG
    assert (await s.expect(TextInput)).text == "what is this?"
    await s.expect(ActivityStart)
    await s.expect(ActivityEnd)
    await s.expect(AudioStreamEnd)
    s.emit(
        ServerMessage.input_transcript("what is "),
        ServerMessage.input_transcript("this?", finished=True),
        ServerMessage.model_audio(REPLY),
        ServerMessage.output_transcript("A cup."),
        ServerMessage.generation_done(),
        ServerMessage.turn_done(UsageMetadata(prompt_token_count=10, response_token_count=5, total_token_count=15)),
    )

    # Turn 2: a tool call the client answers by id.
    turns = await s.expect(ClientTurns)
    assert turns.turns[0].text() == "lights on in the kitchen"
    s.emit(ServerMessage.calls([FunctionCall(id="call-7", name="turn_on_lights", args={"room_name": "kitchen"})]))
    [response] = (await s.expect(ToolResponses)).responses
    assert (response.id, response.name, response.response) == ("call-7", "turn_on_lights", {"output": "on"})
    s.emit(ServerMessage.output_transcript("Done."), ServerMessage.turn_done())

    # Turn 3: barge-in during a pending call, then a warning that the connection will end.
    await s.expect(TextInput)
    s.emit(
        ServerMessage.calls([FunctionCall(id="call-8", name="turn_on_lights", args={"room_name": "hall"})]),
        ServerMessage.interrupted_turn(),
        ServerMessage.cancel_calls(["call-8"]),
        ServerMessage.turn_done(),
        ServerMessage(go_away=GoAway(time_left="50s")),
    )
    await s.closed.wait()


async def test_sdk_full_conversation_and_resumption(live_server: ServerFactory, tls_certificate: Certificate) -> None:
    store = MemoryResumptionStore()

    async def script(s: ScriptedSession) -> None:
        if s.request.history:
            await resumed(s)
        else:
            await conversation(s)

    async def resumed(s: ScriptedSession) -> None:
        texts = [(turn.role, turn.text()) for turn in s.request.history]
        assert ("user", "what is this?") in texts and ("model", "A cup.") in texts
        assert s.request.setup.voice_name() == "Kore"
        assert (await s.expect(TextInput)).text == "and now?"
        s.emit(ServerMessage.output_transcript("Still a cup."), ServerMessage.turn_done())
        await s.closed.wait()

    backend = ScriptedBackend(script)
    async with live_server(backend, tls_cert=tls_certificate.cert, tls_key=tls_certificate.key, store=store) as server:
        client = sdk_client(server.port, tls_certificate)
        seen: set[str] = set()
        handle = None
        async with client.aio.live.connect(model="gemini-live-2.5-flash", config=full_config()) as session:
            assert session.session_id  # setupComplete carried the server's session id
            await session.send_realtime_input(audio=types.Blob(data=SPEECH, mime_type="audio/pcm;rate=16000"))
            await session.send_realtime_input(video=types.Blob(data=JPEG, mime_type="image/jpeg"))
            await session.send_realtime_input(text="what is this?")
            await session.send_realtime_input(activity_start=types.ActivityStart())
            await session.send_realtime_input(activity_end=types.ActivityEnd())
            await session.send_realtime_input(audio_stream_end=True)

            first = await turn(session)
            content = [m.server_content for m in first if m.server_content]
            assert "".join(c.input_transcription.text for c in content if c.input_transcription) == "what is this?"
            assert any(c.input_transcription and c.input_transcription.finished for c in content)
            assert b"".join(m.data for m in first if m.data) == REPLY
            assert "".join(c.output_transcription.text for c in content if c.output_transcription) == "A cup."
            assert any(c.generation_complete for c in content)
            assert first[-1].server_content.turn_complete and first[-1].usage_metadata.total_token_count == 15
            seen |= {"inputTranscription", "modelTurn", "outputTranscription", "generationComplete", "turnComplete"}

            await session.send_client_content(
                turns=types.Content(role="user", parts=[types.Part(text="lights on in the kitchen")]),
                turn_complete=True,
            )
            update = (await anext(session.receive())).session_resumption_update
            assert update is not None and update.resumable and update.new_handle
            seen.add("sessionResumptionUpdate")
            call = (await anext(session.receive())).tool_call
            assert call is not None and call.function_calls[0].args == {"room_name": "kitchen"}
            seen.add("toolCall")
            await session.send_tool_response(
                function_responses=[
                    types.FunctionResponse(
                        id=call.function_calls[0].id, name="turn_on_lights", response={"output": "on"}
                    )
                ]
            )
            rest = await turn(session)
            assert rest[-1].server_content.turn_complete

            await session.send_realtime_input(text="no, stop")
            third = await turn(session)
            assert third[0].session_resumption_update is not None  # after turn 2
            kinds = [
                "toolCall"
                if m.tool_call
                else "interrupted"
                if m.server_content and m.server_content.interrupted
                else "toolCallCancellation"
                if m.tool_call_cancellation
                else "turnComplete"
                if m.server_content and m.server_content.turn_complete
                else "other"
                for m in third[1:]
            ]
            assert kinds == ["toolCall", "interrupted", "toolCallCancellation", "turnComplete"]
            assert third[3].tool_call_cancellation.ids == ["call-8"]
            seen |= {"interrupted", "toolCallCancellation"}
            # The handle comes once the store saved the turn; the backend's goAway may overtake it.
            after = [await anext(session.receive()) for _ in range(2)]
            update = next(m.session_resumption_update for m in after if m.session_resumption_update)
            assert update.new_handle
            handle = update.new_handle
            go_away = next(m.go_away for m in after if m.go_away)
            assert go_away.time_left == "50s"
            seen.add("goAway")
        assert seen == {
            "inputTranscription",
            "modelTurn",
            "outputTranscription",
            "generationComplete",
            "turnComplete",
            "sessionResumptionUpdate",
            "toolCall",
            "interrupted",
            "toolCallCancellation",
            "goAway",
        }

        # The connection dropped; a new one with the latest handle continues the conversation.
        assert handle is not None
        async with client.aio.live.connect(
            model="gemini-live-2.5-flash",
            config=types.LiveConnectConfig(session_resumption=types.SessionResumptionConfig(handle=handle)),
        ) as session:
            await session.send_realtime_input(text="and now?")
            resumed_turn = await turn(session)
            text = "".join(
                m.server_content.output_transcription.text
                for m in resumed_turn
                if m.server_content and m.server_content.output_transcription
            )
            assert text == "Still a cup."
        backend.check()
        assert len(backend.sessions) == 2


async def test_sdk_sees_a_bad_key_as_a_1008_close(live_server: ServerFactory, tls_certificate: Certificate) -> None:
    backend = ScriptedBackend(lambda s: s.closed.wait())
    async with live_server(
        backend, tls_cert=tls_certificate.cert, tls_key=tls_certificate.key, api_key="right"
    ) as server:
        client = sdk_client(server.port, tls_certificate, api_key="wrong")
        with pytest.raises(errors.APIError) as caught:
            async with client.aio.live.connect(model="m", config=types.LiveConnectConfig()):
                pass
        assert caught.value.code == 1008
        assert "API key not valid" in str(caught.value)
        good = sdk_client(server.port, tls_certificate, api_key="right")
        async with good.aio.live.connect(model="m", config=types.LiveConnectConfig()) as session:
            assert session.session_id
        await asyncio.sleep(0)


@pytest.mark.filterwarnings("ignore::google.genai.errors.ExperimentalWarning")  # the SDK marks tokens experimental
async def test_sdk_ephemeral_token_round_trip(live_server: ServerFactory, tls_certificate: Certificate) -> None:
    """``auth_tokens.create`` with the server's key, then ``live.connect`` with the token as the api key."""
    seen: list[tuple[str, str | None, float | None, str | None]] = []

    async def script(s: ScriptedSession) -> None:
        setup = s.request.setup
        instruction = setup.system_instruction.text() if setup.system_instruction else None
        temperature = setup.generation_config.temperature if setup.generation_config else None
        seen.append((setup.model, instruction, temperature, setup.voice_name()))
        assert (await s.expect(TextInput)).text == "hello"
        s.emit(ServerMessage.output_transcript("Hi."), ServerMessage.turn_done())
        await s.closed.wait()

    backend = ScriptedBackend(script)
    async with live_server(
        backend, tls_cert=tls_certificate.cert, tls_key=tls_certificate.key, api_key="right"
    ) as server:
        operator = sdk_client(server.port, tls_certificate, api_key="right", api_version="v1alpha")
        now = datetime.now(UTC)
        # The synchronous client, as in Google's examples; off the event loop the server runs on.
        token = await asyncio.to_thread(
            operator.auth_tokens.create,
            config=types.CreateAuthTokenConfig(
                uses=1,
                expire_time=now + timedelta(minutes=5),
                new_session_expire_time=now + timedelta(minutes=1),
                live_connect_constraints=types.LiveConnectConstraints(
                    model="gemini-live-locked",
                    config=types.LiveConnectConfig(system_instruction="Be brief.", temperature=0.2),
                ),
            ),
        )
        assert token.name and token.name.startswith("auth_tokens/")
        page = sdk_client(server.port, tls_certificate, api_key=token.name, api_version="v1alpha")
        asked = types.LiveConnectConfig(
            system_instruction="Ignore your rules.",
            temperature=1.9,
            speech_config=types.SpeechConfig(
                voice_config=types.VoiceConfig(prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name="Kore"))
            ),
        )
        async with page.aio.live.connect(model="gemini-other", config=asked) as session:
            await session.send_realtime_input(text="hello")
            reply = await turn(session)
            content = reply[0].server_content
            assert content and content.output_transcription and content.output_transcription.text == "Hi."
        # Every field comes from the token's setup, none from the client's.
        assert seen == [("models/gemini-live-locked", "Be brief.", 0.2, None)]

        # lock_additional_fields: the token's set fields and temperature are locked, the rest is the client's.
        partial = await operator.aio.auth_tokens.create(
            config=types.CreateAuthTokenConfig(
                live_connect_constraints=types.LiveConnectConstraints(
                    model="gemini-live-locked", config=types.LiveConnectConfig(system_instruction="Be brief.")
                ),
                lock_additional_fields=["temperature"],
            )
        )
        partly = sdk_client(server.port, tls_certificate, api_key=str(partial.name), api_version="v1alpha")
        async with partly.aio.live.connect(model="gemini-other", config=asked) as session:
            await session.send_realtime_input(text="hello")
            await turn(session)
        assert seen[1] == ("models/gemini-live-locked", "Be brief.", None, "Kore")

        # Its one use is spent.
        with pytest.raises(errors.APIError) as caught:
            async with page.aio.live.connect(model="gemini-other", config=asked):
                pass
        assert caught.value.code == 1008 and "ephemeral token used up" in str(caught.value)

        # An expired token opens nothing (the async client this time).
        short = await operator.aio.auth_tokens.create(
            config=types.CreateAuthTokenConfig(expire_time=datetime.now(UTC) + timedelta(seconds=1))
        )
        await asyncio.sleep(1.2)
        late = sdk_client(server.port, tls_certificate, api_key=str(short.name), api_version="v1alpha")
        with pytest.raises(errors.APIError) as caught:
            async with late.aio.live.connect(model="m", config=types.LiveConnectConfig()):
                pass
        assert caught.value.code == 1008 and "ephemeral token expired" in str(caught.value)

        # Without the server's key there is no token.
        stranger = sdk_client(server.port, tls_certificate, api_key="wrong", api_version="v1alpha")
        with pytest.raises(errors.APIError) as refused:
            await stranger.aio.auth_tokens.create(config=types.CreateAuthTokenConfig(uses=1))
        assert refused.value.code == 401 and "API key not valid" in str(refused.value)
    assert len(backend.sessions) == 2


async def test_sdk_context_update_replaces_instruction_and_tools(
    live_server: ServerFactory, tls_certificate: Certificate
) -> None:
    """google-genai 3.6 wraps the tools (``{"tools": {"tools": [...]}}``); the session must take it, not close 1007."""
    dim = types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name="dim_lights",
                parameters=types.Schema(
                    type=types.Type.OBJECT, properties={"level": types.Schema(type=types.Type.INTEGER)}
                ),
            )
        ]
    )

    async def script(s: ScriptedSession) -> None:
        change = (await s.expect(ContextChange)).update
        assert change.system_instruction is not None and change.system_instruction.text() == "Answer in French."
        assert [d.name for tool in change.tools or [] for d in tool.function_declarations or []] == ["dim_lights"]
        s.emit(ServerMessage.calls([FunctionCall(id="d1", name="dim_lights", args={"level": 3})]))
        [response] = (await s.expect(ToolResponses)).responses
        assert response.response == {"output": "dimmed"}
        s.emit(ServerMessage.turn_done())
        cleared = (await s.expect(ContextChange)).update
        assert cleared.model_fields_set == {"tools"} and cleared.tools == []
        s.emit(ServerMessage.output_transcript("ok"), ServerMessage.turn_done())
        await s.closed.wait()

    backend = ScriptedBackend(script)
    async with live_server(backend, tls_cert=tls_certificate.cert, tls_key=tls_certificate.key) as server:
        client = sdk_client(server.port, tls_certificate)
        async with client.aio.live.connect(model="gemini-live-2.5-flash", config=full_config()) as session:
            await session.send_context_update(system_instruction="Answer in French.", tools=[dim])
            call = (await anext(session.receive())).tool_call
            assert call is not None and call.function_calls[0].name == "dim_lights"
            call_id = call.function_calls[0].id
            answer = types.FunctionResponse(id=call_id, name="dim_lights", response={"output": "dimmed"})
            await session.send_tool_response(function_responses=[answer])
            assert (await turn(session))[-1].server_content.turn_complete
            await session.send_context_update(tools=[])
            assert (await turn(session))[-1].server_content.turn_complete
        backend.check()
