"""Smart Turn v3, the end-of-turn model the pipecat-ai wheel carries, on spoken prompts."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.backends.local.models import ModelMissing
from assistant.backends.local.tts import load_voices
from assistant.backends.local.turn_model import SmartTurn, load_turn_model, sounds_finished
from assistant.bench.speech import spoken_prompt


def spoken(text: str) -> np.ndarray:
    voices = load_voices("joe")
    try:
        pcm = spoken_prompt(text, voices.default)
    finally:
        voices.close()
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
    return np.concatenate([audio, np.zeros(1600, dtype=np.float32)])  # 100 ms of the pause, as a turn holds


@pytest.mark.slow
def test_a_finished_question_sounds_finished_and_a_cut_one_does_not() -> None:
    model = load_turn_model("smart-turn")
    assert isinstance(model, SmartTurn)
    assert model.features(np.zeros(16_000, dtype=np.float32)).shape == (80, 800)
    assert sounds_finished(model, spoken("What time is it?"))
    assert not sounds_finished(model, spoken("Why is the"))


def test_none_turns_it_off_and_a_wrong_path_says_so() -> None:
    assert load_turn_model("none") is None
    with pytest.raises(ModelMissing, match="not a file"):
        load_turn_model("/nonexistent/smart-turn.onnx")
