"""The offline stack answers "what does this say?" about a frame the client shows it.

``assistant serve --backend local`` runs as a user runs it: the server's tool
registry offers ``describe_view`` (the project's own entry point), the
router sends the question to it, OCR reads the printed sentence from the
sampler's JPEG, and the answer is spoken with its transcription.
"""

from __future__ import annotations

import re

import pytest
from google.genai import types

from assistant.backends.local.tts import EspeakVoice
from assistant.bench.speech import spoken_prompt
from tests.conftest import Certificate
from tests.test_local_e2e import Conversation, audio_config, espeak, offline, sdk_client, serve_local, transcript
from tests.test_vision_tool import SENTENCE, printed_sentence_jpeg

pytestmark = pytest.mark.slow
__all__ = ["espeak", "offline"]  # fixtures this module uses from the local end-to-end tests

KEY_WORDS = {"meeting", "moved", "room", "twelve"}


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


async def test_a_shown_sentence_is_read_back_when_asked_by_voice_or_text(
    tls_certificate: Certificate, espeak: EspeakVoice
) -> None:
    assert words(SENTENCE) >= KEY_WORDS
    frame = types.Blob(data=printed_sentence_jpeg(), mime_type="image/jpeg")
    with serve_local(tls_certificate) as port:
        client = sdk_client(port, tls_certificate)
        async with client.aio.live.connect(model="local", config=audio_config(tools=[])) as session:
            async with Conversation(session, {}).running() as talk:
                await session.send_realtime_input(video=frame)
                _, spoken = await talk.ask(spoken_prompt("What does this say?", espeak))
                start, done = len(talk.heard.messages), talk.turns_done
                await session.send_realtime_input(text="Read this to me.")
                await talk.until(lambda: talk.turns_done > done)
                typed = talk.heard.since(start)
    for messages in (spoken, typed):
        answer = transcript(messages, "output_transcription")
        assert words(answer) >= KEY_WORDS, answer
