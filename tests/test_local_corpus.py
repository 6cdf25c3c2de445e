"""The conformance corpus through the local backend: each SDK frame reaches it with its meaning kept.

The frames are the ones ``test_sdk_corpus`` captures from the installed
google-genai SDK. Each is parsed as the server parses it and handed to a
real ``LocalStream`` (the models are fakes: a scripted dialogue, a VAD that
keeps what it hears, a fixed transcript), and what the frame means is
checked where the local backend keeps it: the audio reaches the VAD, a
frame becomes the latest picture, a context update replaces the system
instruction and tools, a turn is answered, a late result is announced. The
setup with every field the SDK writes is checked the same way: each field
is acted on, or named in the list of fields the local backend cannot honour.
A slow test runs the setup, a context update and a chat turn through the
real local models behind the real server.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from google.genai import types

from assistant.backends.local import LocalBackend
from assistant.backends.local.conversation import Say
from assistant.backends.local.stream import LocalStream
from assistant.backends.local.unhonoured import unhonoured_fields
from assistant.protocol import (
    ActivityStart,
    AudioChunk,
    ClientEvent,
    ClientTurns,
    ContextChange,
    Setup,
    TextInput,
    ToolResponses,
    client_events,
    parse_client_message,
)
from tests.conftest import Certificate, ServerFactory
from tests.support.scripted import ScriptedBackend, ScriptedSession
from tests.support.sdk_frames import sdk_frames
from tests.test_local_e2e import SharedBackend, local_stack, offline, sdk_client
from tests.test_local_parity import LoudIsSpeech, ScriptedDialogue, open_session, quiet_for, text_of, tone, until
from tests.test_sdk_corpus import CLIENT_CORPUS, LIGHTS, Send, every_setup_field
from tests.test_server_sdk import turn

__all__ = ["local_stack", "offline"]  # fixtures

MANUAL: dict[str, object] = {"realtimeInputConfig": {"automaticActivityDetection": {"disabled": True}}}
WITH_LIGHTS: dict[str, object] = {"tools": [{"functionDeclarations": [{"name": "turn_on_lights"}]}]}


@dataclass
class Local:
    """A local session over fakes, with the parts a check looks at."""

    session: LocalStream
    dialogue: ScriptedDialogue
    vad: LoudIsSpeech | None

    async def send(self, events: list[ClientEvent]) -> None:
        for event in events:
            await self.session.send(event)


Check = Callable[[Local, list[ClientEvent]], Awaitable[None]]


async def audio_reaches_the_vad(local: Local, events: list[ClientEvent]) -> None:
    [chunk] = events
    assert isinstance(chunk, AudioChunk)
    await local.send(events)
    assert local.vad is not None and bytes(local.vad.heard) == chunk.pcm


async def a_frame_is_the_latest_picture(local: Local, events: list[ClientEvent]) -> None:
    await local.send(events)
    assert [local.session.latest_frame] == events


async def text_is_answered(local: Local, events: list[ClientEvent]) -> None:
    [typed] = events
    assert isinstance(typed, TextInput)
    await local.send(events)
    assert text_of(await until(local.session)) == "Yes."
    assert local.dialogue.seen[-1].turns[-1].text() == typed.text


async def activity_start_opens_a_turn(local: Local, events: list[ClientEvent]) -> None:
    await local.send(events)
    assert local.session.user is not None


async def activity_end_ends_the_turn(local: Local, events: list[ClientEvent]) -> None:
    await local.send([ActivityStart(), AudioChunk(tone(0.5, loud=True)), *events])
    messages = await until(local.session)
    assert local.session.user is None and text_of(messages) == "Yes."
    assert local.dialogue.seen[-1].turns[-1].text() == "Hello"  # what the fake recogniser heard


async def stream_end_ends_the_turn_in_progress(local: Local, events: list[ClientEvent]) -> None:
    await local.send([AudioChunk(tone(1.0, loud=True))])
    assert local.session.user is not None  # speaking, no silence yet
    await local.send(events)
    messages = await until(local.session)
    assert local.session.user is None and text_of(messages) == "Yes."


async def turns_join_the_history_unanswered(local: Local, events: list[ClientEvent]) -> None:
    [turns] = events
    assert isinstance(turns, ClientTurns) and not turns.turn_complete
    await local.send(events)
    assert local.session.conversation.turns == turns.turns
    assert await quiet_for(local.session, 0.2) == [] and local.dialogue.seen == []


async def a_complete_turn_is_answered_with_its_content(local: Local, events: list[ClientEvent]) -> None:
    [turns] = events
    assert isinstance(turns, ClientTurns) and turns.turn_complete
    await local.send(events)
    assert text_of(await until(local.session)) == "Yes."
    if turns.turns:
        assert local.dialogue.seen[-1].turns[-len(turns.turns) :] == turns.turns  # the picture included
    else:
        assert len(local.dialogue.seen) == 1  # "answer now", on what there is


async def a_late_result_is_announced_by_its_scheduling(local: Local, events: list[ClientEvent]) -> None:
    [responses] = events
    assert isinstance(responses, ToolResponses) and responses.responses[0].scheduling == "WHEN_IDLE"
    await local.send(events)
    assert text_of(await until(local.session)) == 'result {"room_name": "kitchen"}. '


async def the_update_replaces_instruction_and_tools(local: Local, events: list[ClientEvent]) -> None:
    [change] = events
    assert isinstance(change, ContextChange)
    await local.send(events)
    conversation = local.session.conversation
    if change.update.system_instruction is not None:
        assert conversation.system_instruction == "Answer in French."
    declared = [d.name for tool in change.update.tools or [] for d in tool.function_declarations or []]
    assert [d.name for d in conversation.tools] == declared


# What each corpus frame means to the local backend, and the setup it is sent in.
LOCAL_MEANING: dict[str, tuple[Check, Mapping[str, object], bool]] = {
    "realtime-audio": (audio_reaches_the_vad, {}, True),
    "realtime-media-legacy": (audio_reaches_the_vad, {}, True),
    "realtime-video": (a_frame_is_the_latest_picture, {}, True),
    "realtime-text": (text_is_answered, {}, True),
    "activity-start": (activity_start_opens_a_turn, MANUAL, False),
    "activity-end": (activity_end_ends_the_turn, MANUAL, False),
    "audio-stream-end": (stream_end_ends_the_turn_in_progress, {}, True),
    "client-content-turns": (turns_join_the_history_unanswered, {}, True),
    "client-content-image": (a_complete_turn_is_answered_with_its_content, {}, True),
    "client-content-end-of-turn": (a_complete_turn_is_answered_with_its_content, {}, True),
    "tool-response": (a_late_result_is_announced_by_its_scheduling, WITH_LIGHTS, True),
    "context-update": (the_update_replaces_instruction_and_tools, WITH_LIGHTS, True),
    "context-update-clear-tools": (the_update_replaces_instruction_and_tools, WITH_LIGHTS, True),
}
# The session resamples other rates to 16 kHz before any backend sees them (tested with the session).
RESAMPLED_FIRST = {"realtime-audio-48k"}


def test_every_corpus_frame_has_a_local_meaning() -> None:
    assert {case[0] for case in CLIENT_CORPUS} == set(LOCAL_MEANING) | RESAMPLED_FIRST


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(1) as pool:
        yield pool


LOCAL_CASES = [case for case in CLIENT_CORPUS if case[0] in LOCAL_MEANING]


@pytest.mark.parametrize("send", [case[1] for case in LOCAL_CASES], ids=[case[0] for case in LOCAL_CASES])
async def test_every_sdk_frame_reaches_the_local_backend_with_its_meaning_kept(
    request: pytest.FixtureRequest, executor: ThreadPoolExecutor, send: Send
) -> None:
    name = request.node.callspec.id
    check, setup, automatic = LOCAL_MEANING[name]
    [frame] = await sdk_frames(send)
    events = client_events(parse_client_message(frame))
    dialogue = ScriptedDialogue([[Say("Yes.")]])
    vad = LoudIsSpeech() if automatic else None
    local = Local(open_session(executor, dialogue, setup, vad), dialogue, vad)
    try:
        await check(local, events)
    finally:
        await local.session.close()


async def captured_setup(
    live_server: ServerFactory, certificate: Certificate, config: types.LiveConnectConfig
) -> Setup:
    """The setup the server hands a backend when the SDK connects with ``config``."""
    seen: list[Setup] = []

    async def record(s: ScriptedSession) -> None:
        seen.append(s.request.setup)
        await s.closed.wait()

    async with live_server(ScriptedBackend(record), tls_cert=certificate.cert, tls_key=certificate.key) as server:
        async with sdk_client(server.port, certificate).aio.live.connect(model="local", config=config):
            pass
    [setup] = seen
    return setup


async def test_every_setup_field_is_acted_on_or_named(
    live_server: ServerFactory, tls_certificate: Certificate, executor: ThreadPoolExecutor
) -> None:
    setup = await captured_setup(live_server, tls_certificate, every_setup_field())
    wire = setup.model_dump(by_alias=True, exclude_none=True)
    session = open_session(executor, ScriptedDialogue([]), wire, LoudIsSpeech())
    try:
        generation = session.generation
        assert (generation.temperature, generation.top_p, generation.top_k, generation.seed) == (0.4, 0.9, 20, 7)
        assert generation.max_tokens == 256 and session.speak_audio
        assert session.conversation.system_instruction == "Be brief."
        assert [d.name for d in session.conversation.tools] == ["turn_on_lights"]
        assert session.input_transcripts and session.output_transcripts
        turns = session.turn_settings
        assert turns.automatic and not turns.interrupts and turns.silence_s == pytest.approx(0.3)
    finally:
        await session.close()
    # sessionResumption is the server's (for either backend), not the backend's
    assert unhonoured_fields(setup) == [
        "tools.googleSearch",
        "tools.codeExecution",
        "tools.urlContext",
        "generationConfig.enableAffectiveDialog",
        "generationConfig.mediaResolution",
        "generationConfig.thinkingConfig",
        "generationConfig.speechConfig.languageCode",
        "realtimeInputConfig.turnCoverage",
        "contextWindowCompression",
        "proactivity",
        "historyConfig",
        "safetySettings",
    ]


@pytest.mark.slow
async def test_the_corpus_setup_and_a_context_update_through_the_real_local_models(
    live_server: ServerFactory,
    tls_certificate: Certificate,
    local_stack: LocalBackend,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = every_setup_field()
    config.response_modalities = [types.Modality.TEXT]
    async with live_server(
        SharedBackend(local_stack), tls_cert=tls_certificate.cert, tls_key=tls_certificate.key
    ) as server:
        client = sdk_client(server.port, tls_certificate)
        with caplog.at_level(logging.INFO, logger="assistant.local.stream"):
            async with client.aio.live.connect(model="local", config=config) as session:
                await session.send_context_update(system_instruction="Answer in French.", tools=[LIGHTS])
                # small talk: the chat model answers (a question of fact gets the offline "can't")
                await session.send_realtime_input(text="I had a lovely day at the park with my dog.")
                messages = await turn(session)
    done = messages[-1]
    assert done.server_content is not None and done.server_content.turn_complete
    reply = "".join(
        part.text or ""
        for m in messages
        if m.server_content and m.server_content.model_turn
        for part in m.server_content.model_turn.parts or []
    )
    assert reply.strip()
    usage = done.usage_metadata  # the chat model answered: its token counts come with the turn
    assert usage is not None and usage.prompt_token_count and usage.response_token_count
    assert usage.total_token_count == usage.prompt_token_count + usage.response_token_count
    [named] = [r.getMessage() for r in caplog.records if "cannot honour" in r.getMessage()]
    assert "tools.googleSearch" in named and "generationConfig.thinkingConfig" in named
