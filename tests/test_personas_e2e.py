"""The Thiruvalluvar persona end to end, spoken, offline.

``assistant serve --backend local --persona thiruvalluvar`` runs as a real
process over the Thirukkural index (built once per test run, see
``kural_index``). The google-genai SDK connects over TLS, declares no tools
and says nothing about personas: a question spoken by espeak-ng at test time
is streamed in real time, the server's router sends it to ``search_knowledge``
(a server tool the client never sees), and the reply speaks the best couplet.
Then "read it in Tamil" reads that couplet's Tamil original with espeak-ng's
Tamil voice through the same reply audio path.
"""

from __future__ import annotations

import re
import subprocess
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from assistant.backends.local.asr import WhisperRecognizer
from assistant.backends.local.tts import EspeakVoice
from assistant.bench.speech import spoken_prompt
from assistant.knowledge.eval import load_questions
from assistant.knowledge.thirukkural import load_kurals
from tests.conftest import Certificate
from tests.test_local_e2e import (
    Conversation,
    assert_speech_matches,
    audio_config,
    espeak,  # noqa: F401 - a fixture
    reply_audio,
    sdk_client,
    serve_local,
    transcript,
    whisper,  # noqa: F401 - a fixture
)

pytestmark = pytest.mark.slow

QUESTION = "How should I deal with anger?"
CITATION = re.compile(r"Kural (\d+), from the chapter (.+?) \((\d+)\):")


def words(text: str) -> str:
    return " ".join(text.split())


def espeak_seconds(text: str, voice: str, folder: Path) -> float:
    """How long espeak-ng's own recording of ``text`` lasts."""
    path = folder / "reference.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True)
    with wave.open(str(path)) as wav:
        return wav.getnframes() / wav.getframerate()


def voiced_share(pcm: bytes, rate: int = 24_000) -> float:
    """The share of 20 ms frames that carry speech rather than silence."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    frame = rate // 50
    frames = samples[: len(samples) // frame * frame].reshape(-1, frame)
    return float((np.sqrt((frames**2).mean(axis=1)) > 500).mean())


async def test_a_spoken_life_question_gets_a_couplet_and_then_its_tamil(
    tls_certificate: Certificate,
    kural_data_dir: Path,
    espeak: EspeakVoice,  # noqa: F811
    whisper: WhisperRecognizer,  # noqa: F811
    tmp_path: Path,
) -> None:
    [expected] = [q.chapters for q in load_questions() if q.text == QUESTION]
    question = spoken_prompt(QUESTION, espeak)
    in_tamil = spoken_prompt("Read it in Tamil.", espeak)
    config = audio_config(tools=[])  # the client declares nothing: the persona's tools are the server's
    started = time.monotonic()
    with serve_local(tls_certificate, "--persona", "thiruvalluvar") as port:
        ready_s = time.monotonic() - started
        client = sdk_client(port, tls_certificate)
        async with client.aio.live.connect(model="gemini-live-2.5-flash", config=config) as session:
            async with Conversation(session, {}).running() as talk:
                start = len(talk.heard.messages)
                asked, answer = await talk.ask(question)
                timed_answer = talk.heard.messages[start:]
                start = len(talk.heard.messages)
                asked_tamil, tamil = await talk.ask(in_tamil)
                timed_tamil = talk.heard.messages[start:]

    assert not any(m.tool_call for m in answer + tamil), "a server tool's call reached the client"
    heard = transcript(answer, "input_transcription")
    said = transcript(answer, "output_transcription")
    first_audio = next(at for at, m in timed_answer if reply_audio([m]))
    print(f"\nserver ready in {ready_s:.1f} s (models loaded, Thirukkural index opened)")
    print(f"user:      {heard}\nassistant: {said}")
    print(f"first reply audio {1000 * (first_audio - asked.ended):.0f} ms after the end of the question")

    citation = CITATION.search(said)
    assert citation is not None, said
    kural = load_kurals()[int(citation.group(1)) - 1]
    assert kural.chapter_number in expected, f"chapter {kural.chapter} is not one a reader expects for {QUESTION!r}"
    spoken = words(said)
    assert words(kural.couplet) in spoken and words(f"Meaning: {kural.meaning}") in spoken
    assert_speech_matches(whisper, reply_audio(answer), said)  # 24 kHz audio that says what was written

    assert transcript(tamil, "input_transcription").lower().count("tamil") == 1  # heard, and heard once
    assert words(transcript(tamil, "output_transcription")) == words(kural.tamil)
    read = reply_audio(tamil)
    seconds = len(read) / 2 / 24_000
    first_tamil = next(at for at, m in timed_tamil if reply_audio([m]))
    print(f"user:      {transcript(tamil, 'input_transcription')}\nassistant: {kural.tamil}")
    print(f"Tamil read-aloud: {seconds:.1f} s of audio, first {1000 * (first_tamil - asked_tamil.ended):.0f} ms after")
    assert seconds == pytest.approx(espeak_seconds(kural.tamil, "ta", tmp_path), rel=0.25)
    assert voiced_share(read) > 0.3
