"""Gemini 3.x's multi-part messages: reply audio with its transcript (and more) in one ``serverContent``."""

from __future__ import annotations

import asyncio

from assistant.protocol import (
    Blob,
    Content,
    OutputTranscript,
    Part,
    ReplyAudio,
    ReplyParts,
    ReplyText,
    ServerContent,
    ServerMessage,
    Transcription,
    TurnComplete,
    server_events,
)
from assistant.session.history import ConversationLog
from tests.support.scripted import ScriptedSession
from tests.test_session import running

PCM = b"\x01\x00" * 480  # 20 ms at 24 kHz


def spoken(text: str, *, turn_complete: bool | None = None, thought: str | None = None) -> ServerMessage:
    """One 3.x-style message: a chunk of audio, its transcript, and perhaps a thought or the turn's end."""
    parts = [Part(inline_data=Blob(data=PCM, mime_type="audio/pcm;rate=24000"))]
    if thought is not None:
        parts.insert(0, Part(text=thought, thought=True))
    return ServerMessage(
        server_content=ServerContent(
            model_turn=Content(role="model", parts=parts),
            output_transcription=Transcription(text=text),
            turn_complete=turn_complete,
        )
    )


def test_audio_comes_first_as_its_own_event_then_the_rest_in_order() -> None:
    events = server_events(spoken("Hel", turn_complete=True, thought="greet"))
    assert [type(event) for event in events] == [ReplyAudio, ReplyParts, OutputTranscript, TurnComplete]
    audio, thought = events[0], events[1]
    assert isinstance(audio, ReplyAudio) and audio.pcm == PCM and audio.sample_rate == 24_000
    assert isinstance(thought, ReplyParts) and thought.parts[0].thought and thought.parts[0].text == "greet"
    assert events[2] == OutputTranscript("Hel")


def test_messages_with_one_kind_of_content_are_one_event() -> None:
    assert server_events(ServerMessage.model_audio(PCM)) == [ReplyAudio.from_pcm(PCM)]
    assert server_events(ServerMessage.output_transcript("Hi")) == [OutputTranscript("Hi")]
    assert server_events(ServerMessage.turn_done()) == [TurnComplete()]
    assert server_events(ServerMessage.model_text("Hi")) == [ReplyText("Hi")]


def test_history_keeps_the_words_once_and_no_thoughts() -> None:
    log = ConversationLog()
    for message in (spoken("It is", thought="look at the clock"), spoken(" noon.", turn_complete=True)):
        for event in server_events(message):
            log.server_event(event)
    assert [(turn.role, turn.text()) for turn in log.snapshot()] == [("model", "It is noon.")]


async def test_barge_in_flushes_the_audio_of_multi_part_messages_and_keeps_their_transcripts() -> None:
    release = asyncio.Event()
    words = [f"w{index} " for index in range(20)]

    async def script(s: ScriptedSession) -> None:
        await release.wait()
        s.emit(*[spoken(word) for word in words])
        s.emit(ServerMessage.interrupted_turn(), ServerMessage.turn_done())

    # A one-frame pipe stands for a client that reads slowly: the reply piles up in the session.
    async with running(script, pipe_frames=1) as (client, _, session):
        release.set()
        while not session.stats.flushed_on_interrupt:
            await asyncio.sleep(0.01)
        audio, transcript = 0, ""
        while True:
            message = await client.recv()
            audio += len(message.audio_parts())
            content = message.server_content
            if content is not None and content.output_transcription is not None:
                transcript += content.output_transcription.text or ""
            if message.is_turn_complete:
                break
        assert session.stats.flushed_on_interrupt > 0
        assert audio == len(words) - session.stats.flushed_on_interrupt
        assert transcript == "".join(words)
