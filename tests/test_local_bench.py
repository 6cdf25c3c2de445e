"""The long-turn path of streaming recognition (real models); ``assistant bench`` is tested in test_bench_*."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.backends.local.asr import WhisperRecognizer, normalise_text
from assistant.backends.local.transcript import MAX_WINDOW_S
from assistant.backends.local.tts import PiperVoice, resolve_piper_voice
from assistant.bench.speech import spoken_prompt
from tests.support.streaming import stream_turn


@pytest.mark.slow
def test_a_long_turn_keeps_a_bounded_window_and_its_words() -> None:
    """A 30-second monologue: committed audio leaves the window, no committed word is lost."""
    recognizer = WhisperRecognizer()
    sentences = [
        "The quick brown fox jumps over the lazy dog.",
        "My sister lives in a small house near the river.",
        "Every morning she walks her two dogs to the bakery.",
        "On Sundays we cook a large dinner for the whole family.",
        "After dinner we play cards until it gets dark outside.",
        "Then everybody goes home and the house is quiet again.",
        "In the summer the garden is full of roses and bees.",
        "We sit outside and watch the birds until the sun goes down.",
    ]
    voice = PiperVoice(resolve_piper_voice("joe"))  # the clearer speaker: this test is about lost words
    pause = np.zeros(4000, dtype=np.int16).tobytes()
    pcm = pause.join(spoken_prompt(sentence, voice) for sentence in sentences)
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
    voice.close()
    assert len(audio) / 16_000 > MAX_WINDOW_S + 3

    step = 8000
    turn = stream_turn(recognizer, audio, step)

    assert turn.window.trimmed_s > 5 and turn.longest_window_s <= MAX_WINDOW_S + step / 16_000
    heard = normalise_text("".join(turn.fragments))
    expected = normalise_text(" ".join(sentences))
    missing = set(expected.split()) - set(heard.split())
    assert len(missing) <= 3, f"lost words {missing}: {heard}"
    assert "".join(turn.fragments).strip() == turn.transcript.text
