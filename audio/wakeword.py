"""Wake word detection for 16 kHz 16-bit PCM streams, with the models ``pymicro-wakeword`` carries.

``pymicro-wakeword`` (Apache-2.0, code and models) runs microWakeWord's
streaming TFLite models through a TensorFlow Lite C library inside the
wheel: ``okay_nabu``, ``hey_jarvis``, ``alexa`` and ``hey_mycroft``. Each
model is a small streaming network over 10 ms feature windows, fed three
windows at a time; the package averages its last few outputs and compares
the mean with the model's own cutoff (from the JSON shipped next to it).

Cost, measured on this project's 2-core machine: 35 to 60 microseconds per
20 ms block (a real-time factor under 0.003), 1.4 ms to load a model and
0.2 ms to reset one, so a detector may run on the event loop like any other
cheap per-block step. Like the VAD, a detector is stateful: one per stream,
never shared between streams or threads.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Protocol

from assistant.errors import AssistantError

WAKE_WORD_PACKAGE = "pymicro-wakeword"
WAKE_SAMPLE_RATE = 16_000


class WakeWordUnavailable(AssistantError):
    """The wake word package is missing, or has no model of the name asked for; the message says which."""


class WakeWordDetector(Protocol):
    """What a talk session needs from a detector: feed it audio, hear whether the word was said."""

    name: str  # the model's id, e.g. "okay_nabu"
    phrase: str  # what to say, e.g. "Okay Nabu"

    def detect(self, pcm: bytes) -> bool:
        """Feed 16 kHz int16 PCM (any length); True when the word ended within it."""
        ...

    def reset(self) -> None:
        """Forget the stream (buffered audio, averaged scores) so an old score cannot fire later."""
        ...


def _models_dir() -> Path:
    spec = importlib.util.find_spec("pymicro_wakeword")
    if spec is None or not spec.submodule_search_locations:
        raise WakeWordUnavailable(
            f"a wake word needs {WAKE_WORD_PACKAGE}: pip install 'live-assistant[desktop]' "
            f"(or pip install {WAKE_WORD_PACKAGE})"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def packaged_wake_words() -> list[str]:
    """The model names the installed package carries, sorted (``okay_nabu``, ``hey_jarvis``, ...)."""
    return sorted(path.stem for path in _models_dir().glob("*.json") if path.with_suffix(".tflite").is_file())


def wake_word_name(name: str) -> str:
    """``name`` as a model id: "Okay Nabu", "okay-nabu" and "okay_nabu" are the same word."""
    return "_".join(name.lower().replace("-", " ").replace("_", " ").split())


class MicroWakeWordDetector:
    """A packaged microWakeWord model over a PCM stream, with the model's own cutoff."""

    def __init__(self, name: str) -> None:
        wanted = wake_word_name(name)
        known = packaged_wake_words()
        if wanted not in known:
            raise WakeWordUnavailable(
                f"no packaged wake word {name[:64]!r}; {WAKE_WORD_PACKAGE} carries: {', '.join(known)}"
            )
        from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures

        self.model_path = _models_dir() / f"{wanted}.tflite"
        self._model = MicroWakeWord.from_config(self.model_path.with_suffix(".json"))
        self._features = MicroWakeWordFeatures()
        self.name: str = wanted
        self.phrase: str = self._model.wake_word
        self.cutoff: float = self._model.probability_cutoff

    def probabilities(self, pcm: bytes) -> list[float]:
        """A score per 10 ms feature window ``pcm`` completes: the averaged output, 0.0 between inferences."""
        scores = []
        for features in self._features.process_streaming(pcm):
            score = self._model.process_streaming_prob(features)
            if score is not None:
                scores.append(score)
        return scores

    def detect(self, pcm: bytes) -> bool:
        """True when any score in ``pcm`` passes the model's cutoff; the stream is then reset.

        The reset clears the averaging window, so one spoken word fires once
        and not again for each of the following windows that still hold it.
        """
        fired = any(score > self.cutoff for score in self.probabilities(pcm))
        if fired:
            self.reset()
        return fired

    def reset(self) -> None:
        self._model.reset()
        self._features.reset()

    def close(self) -> None:
        self._model.close()
