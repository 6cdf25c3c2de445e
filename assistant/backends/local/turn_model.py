"""Does the voice sound finished? Smart Turn v3, an end-of-turn model over the turn's audio.

Silence alone cannot tell "What time is it?" from "What time is it... in
Tokyo?", so the session ends a turn early only when the words make a
complete request (``Dialogue.sounds_complete``); the voice is a second
opinion. Smart Turn v3 (Pipecat's BSD-2 model, a Whisper-tiny encoder with a
classifier, 8.7 MB) reads the last 8 seconds of a turn's audio and gives the
probability that the speaker has finished: falling pitch, a final
lengthened syllable and so on. When the words and the voice both say done,
a still shorter silence (200 ms) ends the turn (``TurnSettings.agreed_silence_s``).

The weights come from the ``pipecat-ai`` wheel, which carries them; it is
installed with ``--no-deps`` (its own dependencies pin an older protobuf)
and never imported: the file is found by path and run in onnxruntime. The
input is Whisper's log-mel spectrogram of the waveform normalised to zero
mean and unit variance, as ``transformers.WhisperFeatureExtractor`` with
``chunk_length=8`` gives it; faster-whisper's extractor computes the same.
One call takes about 30 ms on one CPU thread, and runs only once the words
already sound complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from assistant.backends.local.models import ModelMissing, PackagedModel, ProgressCallback, loading, log_progress

SAMPLE_RATE = 16_000
WINDOW_S = 8  # the model reads the last 8 s of the turn, padded with silence in front
DONE_PROBABILITY = 0.5  # the model's own decision threshold
SMART_TURN = PackagedModel(
    "pipecat-ai==1.14.0", "pipecat", "audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx", "--no-deps"
)
SMART_TURN_NAME = "smart-turn-v3.2"


class TurnModel(Protocol):
    """Says how likely it is that the speaker of ``audio`` (16 kHz float32, the turn so far) has finished."""

    name: str

    def probability(self, audio: np.ndarray) -> float: ...


def sounds_finished(model: TurnModel, audio: np.ndarray) -> bool:
    """The model's verdict on the turn's audio (blocking; run it off the event loop)."""
    return model.probability(audio) >= DONE_PROBABILITY


class SmartTurn:
    """Smart Turn v3 in onnxruntime on one thread (the other core is Whisper's)."""

    def __init__(self, model: Path | None = None, progress: ProgressCallback = log_progress) -> None:
        import onnxruntime
        from faster_whisper.feature_extractor import FeatureExtractor

        path = model or SMART_TURN.locate()
        if path is None:
            raise ModelMissing(f"the end-of-turn model {SMART_TURN_NAME} is not installed: {SMART_TURN.install_hint()}")
        if not path.is_file():
            raise ModelMissing(f"end-of-turn model {str(path)[:200]!r} is not a file")
        self.name = SMART_TURN_NAME
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        with loading("end-of-turn model", self.name, path, progress):
            self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._features = FeatureExtractor(feature_size=80, sampling_rate=SAMPLE_RATE)
        self._frames = WINDOW_S * SAMPLE_RATE // self._features.hop_length

    def features(self, audio: np.ndarray) -> np.ndarray:
        """(80, 800) log-mel features of the last 8 s, as the model was trained on them."""
        window = WINDOW_S * SAMPLE_RATE
        clip = np.asarray(audio, dtype=np.float32)[-window:]
        clip = np.pad(clip, (window - len(clip), 0))
        clip = (clip - clip.mean()) / np.sqrt(clip.var() + 1e-7)
        return np.asarray(self._features(clip, padding=0)[:, : self._frames], dtype=np.float32)

    def probability(self, audio: np.ndarray) -> float:
        (output,) = self._session.run(None, {"input_features": self.features(audio)[np.newaxis]})
        return float(np.asarray(output).reshape(-1)[0])


def load_turn_model(name: str, progress: ProgressCallback = log_progress) -> TurnModel | None:
    """``smart-turn`` (the packaged model), a path to a Smart Turn v3 ``.onnx`` file, or ``none``."""
    if name == "none":
        return None
    return SmartTurn(None if name == "smart-turn" else Path(name).expanduser(), progress)
