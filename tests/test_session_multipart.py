"""Gemini 3.x's multi-part messages: reply audio with its transcript (and more) in one ``serverContent``."""

from __future__ import annotations

import asyncio

from assistant.protocol import Blob, Content, Part, ServerContent, ServerMessage, Transcription
from assistant.session.history import ConversationLog
from assistant.session.session import _is_reply_audio, _split_reply_audio
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


def test_audio_is_split_from_the_rest_in_order() -> None:
    audio, rest = _split_reply_audio(spoken("Hel", turn_complete=True, thought="greet"))
    assert _is_reply_audio(audio) and audio.audio_parts()[0].data == PCM
    assert rest.server_content is not None and not rest.audio_parts()
    assert rest.server_content.output_transcription == Transcription(text="Hel")
    assert rest.is_turn_complete
    assert rest.server_content.model_turn is not None and rest.server_content.model_turn.parts[0].thought


def test_messages_with_one_kind_of_content_are_left_alone() -> None:
    for message in (
        ServerMessage.model_audio(PCM),
        ServerMessage.output_transcript("Hi"),
        ServerMessage.turn_done(),
        ServerMessage.model_text("Hi"),
    ):
        assert _split_reply_audio(message) == [message]


def test_history_keeps_the_words_once_and_no_thoughts() -> None:
    log = ConversationLog()
    for message in (spoken("It is", thought="look at the clock"), spoken(" noon.", turn_complete=True)):
        log.server_message(message)
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
