"""Speech recognition and voices served by other processes (``--asr-url``, ``--tts-url``).

A GPU box can then serve the speech models of many front ends. Two kinds of
service, told apart by the URL's scheme:

- **Wyoming** (``tcp://host:port``): Home Assistant's voice protocol, as
  ``wyoming-faster-whisper`` and ``wyoming-piper`` serve it. A transcription
  is ``transcribe``, ``audio-start``, the audio as ``audio-chunk`` events and
  ``audio-stop``, answered by one ``transcript``; a synthesis is one
  ``synthesize`` answered by ``audio-start``, the audio in chunks as the
  voice produces them, and ``audio-stop``.
- **OpenAI-compatible HTTP** (``http(s)://host/v1``): ``/audio/transcriptions``
  (a WAV upload, a JSON ``text`` back) and ``/audio/speech`` (JSON in, a WAV
  back), as vLLM, speaches and faster-whisper-server serve them.

The classes implement the local backend's ``Recognizer`` and ``Synthesizer``
interfaces, so sessions do not know where their speech runs. Both are
blocking (they run on the backend's ASR and TTS threads) and open one
connection per request, which keeps them correct across service restarts.

A service decodes the whole window each time, so the forced prefix of the
in-process Whisper becomes ``words_after``: the committed words are found in
the service's transcript and only the words after them are returned. A
service cannot align words to audio, so windows are never trimmed; Whisper
servers transcribe audio past 30 s on their own.

Failures raise ``SpeechServiceError``, whose text is the project's own and
names no host (it can reach clients as a close reason); the operator's log
gets the address and the cause.
"""

from __future__ import annotations

import difflib
import io
import json
import logging
import socket
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import numpy as np

from assistant.backends.local.asr import SAMPLE_RATE, drop_repeats, normalise_word, split_words
from assistant.errors import AssistantError
from audio.resample import resample

logger = logging.getLogger("assistant.local.services")

CONNECT_TIMEOUT_S = 5.0
REPLY_TIMEOUT_S = 30.0  # a transcription or a sentence of speech
CHUNK_SAMPLES = 1024  # audio sent to a Wyoming recogniser per chunk, as wyoming satellites do
MAX_AUDIO_BYTES = 64 * 1024 * 1024  # a service that sends more for one piece of text is broken
OPENAI_DEFAULT_MODEL = {"asr": "whisper-1", "tts": "tts-1"}
OPENAI_DEFAULT_VOICE = "alloy"  # OpenAI's first voice; compatible servers map it to one of theirs
PROBE_TEXT = "Hello."


class SpeechServiceError(AssistantError):
    """A speech service failed; ``str`` is safe for clients, ``operator_message`` adds where and why."""

    def __init__(self, what: str, problem: str, url: str, cause: str = "") -> None:
        super().__init__(f"the {what} service {problem}")
        self.operator_message = f"the {what} service at {url} {problem}" + (f" ({cause})" if cause else "")


def service_protocol(url: str, what: str) -> str:
    """``wyoming`` for tcp:// URLs, ``openai`` for http(s)://; anything else is the operator's mistake."""
    parts = urlsplit(url)
    if parts.scheme == "tcp" and parts.hostname and parts.port:
        return "wyoming"
    if parts.scheme in ("http", "https") and parts.hostname:
        return "openai"
    raise SpeechServiceError(what, "URL is not tcp://host:port (Wyoming) or http(s)://host/v1 (OpenAI)", url)


def words_after(prefix: str, text: str) -> str:
    """The words of ``text`` (a whole new transcript) that follow the committed ``prefix``.

    The service re-decodes words the prefix already holds, sometimes a little
    differently ("12" for "twelve" is rare, a lost comma is common), so the
    prefix is aligned to the transcript by normalised words, and the words
    after the last aligned one are returned.
    """
    words = split_words(text)
    prefix_words = split_words(prefix)
    if not prefix_words:
        return drop_repeats(text, prefix).strip()
    committed = [normalise_word(word) for word in prefix_words]
    heard = [normalise_word(word) for word in words]
    blocks = difflib.SequenceMatcher(None, committed, heard, autojunk=False).get_matching_blocks()
    last = next((block for block in reversed(blocks) if block.size), None)
    if last is None:
        cut = len(committed)  # nothing in common: assume the prefix's length of words was re-decoded
    else:
        cut = last.b + last.size + max(0, len(committed) - (last.a + last.size))
    # The prefix's last word may have been committed before its punctuation came ("Tamil" of "Tamil.").
    ending, said = prefix_words[-1].strip(), words[cut - 1].strip() if 0 < cut <= len(words) else ""
    punctuation = said[len(ending) :] if said.startswith(ending) and not normalise_word(said[len(ending) :]) else ""
    return drop_repeats(punctuation + "".join(words[cut:]), prefix)


def pcm16(audio: np.ndarray) -> bytes:
    """Float samples in [-1, 1] as 16-bit little-endian PCM."""
    return (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def wav_bytes(audio: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(rate)
        file.writeframes(pcm16(audio))
    return buffer.getvalue()


def wav_samples(data: bytes) -> tuple[int, np.ndarray]:
    """The rate and mono int16 samples of a WAV; streamed WAVs (placeholder sizes) are read to the end.

    Raises ``ValueError`` for anything that is not 16-bit PCM WAV.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a WAV")
    position, rate, channels, width = 12, 0, 0, 0
    while position + 8 <= len(data):
        kind, size = data[position : position + 4], int.from_bytes(data[position + 4 : position + 8], "little")
        body = data[position + 8 : position + 8 + size] if kind != b"data" else data[position + 8 :]
        if kind == b"fmt ":
            channels = int.from_bytes(body[2:4], "little")
            rate = int.from_bytes(body[4:8], "little")
            width = int.from_bytes(body[14:16], "little") // 8
        elif kind == b"data":
            if not rate or width != 2 or channels < 1:
                raise ValueError("not 16-bit PCM")
            body = body[: min(size, len(body)) if 0 < size < 0xFFFFFFFF else len(body)]
            samples = np.frombuffer(body[: len(body) // (2 * channels) * 2 * channels], dtype="<i2")
            return rate, samples.reshape(-1, channels)[:, 0].copy()
        position += 8 + size + (size & 1)
    raise ValueError("a WAV without audio")


class WyomingClient:
    """One Wyoming service: a connection per request, with the wyoming library's event framing."""

    def __init__(self, url: str, what: str) -> None:
        parts = urlsplit(url)
        assert parts.hostname and parts.port
        self.url, self.what = url, what
        self._address = (parts.hostname, parts.port)

    def fail(self, problem: str, cause: object = "") -> SpeechServiceError:
        error = SpeechServiceError(self.what, problem, self.url, str(cause))
        logger.warning("%s", error.operator_message)
        return error

    @contextmanager
    def connection(self) -> Iterator[tuple[BinaryIO, BinaryIO]]:
        """A reader and a writer for one request; every socket failure becomes a ``SpeechServiceError``."""
        try:
            sock = socket.create_connection(self._address, timeout=CONNECT_TIMEOUT_S)
        except OSError as exc:
            raise self.fail("is unreachable", exc) from exc
        sock.settimeout(REPLY_TIMEOUT_S)
        try:
            with sock, sock.makefile("rb") as reader, sock.makefile("wb") as writer:
                yield reader, writer
        except TimeoutError as exc:
            raise self.fail(f"did not answer within {REPLY_TIMEOUT_S:.0f} s", exc) from exc
        except OSError as exc:
            raise self.fail("dropped the connection", exc) from exc

    def read(self, reader: BinaryIO) -> Any:
        """The next event; the service's own error events are reported, an end of stream is a failure."""
        from wyoming.error import Error
        from wyoming.event import read_event

        event = read_event(reader)
        if event is None:
            raise self.fail("closed the connection before answering")
        if Error.is_type(event.type):
            raise self.fail("reported an error", Error.from_event(event).text)
        return event

    def describe(self) -> Any:
        """The service's ``Info``: what it serves."""
        from wyoming.event import write_event
        from wyoming.info import Describe, Info

        with self.connection() as (reader, writer):
            write_event(Describe().event(), writer)
            while not Info.is_type((event := self.read(reader)).type):
                pass
            return Info.from_event(event)


class WyomingRecognizer:
    """A ``Recognizer`` backed by a Wyoming speech-to-text service (``wyoming-faster-whisper``)."""

    def __init__(self, url: str, model: str | None = None, language: str = "en") -> None:
        self._client = WyomingClient(url, "speech recognition")
        self.model, self.language = model, language
        info = self._client.describe()
        if not any(program.installed for program in info.asr):
            raise self._client.fail("serves no speech recognition")
        self.name = model or "service"

    def transcribe(self, audio: np.ndarray, prefix: str = "", context: str = "") -> str:
        if len(audio) == 0:
            return ""
        return words_after(prefix, self.transcript(audio))

    def transcript(self, audio: np.ndarray) -> str:
        """The service's text for the whole of ``audio``."""
        from wyoming.asr import Transcribe, Transcript
        from wyoming.audio import AudioChunk, AudioStart, AudioStop
        from wyoming.event import write_event

        pcm = pcm16(audio)
        audio_format = {"rate": SAMPLE_RATE, "width": 2, "channels": 1}
        with self._client.connection() as (reader, writer):
            write_event(Transcribe(name=self.model, language=self.language).event(), writer)
            write_event(AudioStart(**audio_format).event(), writer)
            step = CHUNK_SAMPLES * 2
            for start in range(0, len(pcm), step):
                write_event(AudioChunk(audio=pcm[start : start + step], **audio_format).event(), writer)
            write_event(AudioStop().event(), writer)
            while not Transcript.is_type((event := self._client.read(reader)).type):
                pass
            return str(Transcript.from_event(event).text or "")

    def word_ends(self, audio: np.ndarray, text: str, context: str = "") -> list[float]:
        """A service does not align words to audio: nothing is trimmed (see the module's docstring)."""
        return []


class ServiceVoice:
    """A voice on a speech service: whatever rate a reply comes at, it is spoken at the rate the probe found."""

    sample_rate: int

    def synthesize(self, text: str) -> np.ndarray:
        if not text.strip():
            return np.zeros(0, dtype=np.int16)
        rate, samples = self._synthesize(text)
        if rate != self.sample_rate:
            return np.frombuffer(resample(samples.tobytes(), rate, self.sample_rate), dtype="<i2").copy()
        return samples

    def _synthesize(self, text: str) -> tuple[int, np.ndarray]:
        """The rate and samples of ``text`` as the service sends them."""
        raise NotImplementedError


class WyomingVoice(ServiceVoice):
    """A ``Synthesizer`` backed by a Wyoming text-to-speech service (``wyoming-piper``)."""

    def __init__(self, url: str, voice: str | None = None) -> None:
        self._client = WyomingClient(url, "speech synthesis")
        self.voice = voice
        info = self._client.describe()
        if not any(program.installed for program in info.tts):
            raise self._client.fail("serves no voices")
        self.name = voice or "service"
        self.sample_rate, _ = self._synthesize(PROBE_TEXT)  # proves the voice works, and tells its rate

    def _synthesize(self, text: str) -> tuple[int, np.ndarray]:
        """The rate and samples of ``text`` as the service sends them."""
        from wyoming.audio import AudioChunk, AudioStart, AudioStop
        from wyoming.event import write_event
        from wyoming.tts import Synthesize, SynthesizeVoice

        voice = SynthesizeVoice(name=self.voice) if self.voice else None
        chunks: list[bytes] = []
        received = 0
        rate = width = channels = 0
        with self._client.connection() as (reader, writer):
            write_event(Synthesize(text=text, voice=voice).event(), writer)
            while not AudioStop.is_type((event := self._client.read(reader)).type):
                if AudioStart.is_type(event.type):
                    start = AudioStart.from_event(event)
                    rate, width, channels = start.rate, start.width, start.channels
                elif AudioChunk.is_type(event.type):
                    chunk = AudioChunk.from_event(event)
                    rate, width, channels = chunk.rate, chunk.width, chunk.channels
                    received += len(chunk.audio)
                    if received > MAX_AUDIO_BYTES:
                        raise self._client.fail("sent more audio than any sentence needs")
                    chunks.append(chunk.audio)
        if chunks and (width != 2 or channels < 1):
            raise self._client.fail("sent audio that is not 16-bit PCM", f"width {width}, channels {channels}")
        if not chunks:
            return rate or SAMPLE_RATE, np.zeros(0, dtype=np.int16)
        pcm = b"".join(chunks)
        samples = np.frombuffer(pcm[: len(pcm) // (2 * channels) * 2 * channels], dtype="<i2")
        return rate, samples.reshape(-1, channels)[:, 0].copy()

    def close(self) -> None:
        """Nothing held open: each request has its own connection."""


class OpenAIAudio:
    """An OpenAI-compatible audio endpoint (``base_url`` ends where ``/audio/...`` begins, e.g. ``.../v1``)."""

    def __init__(self, base_url: str, what: str, api_key: str | None) -> None:
        import httpx

        self.url, self.what = base_url, what
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(  # thread-safe: the ASR and TTS threads may share one
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(REPLY_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
        )

    def fail(self, problem: str, cause: object = "") -> SpeechServiceError:
        error = SpeechServiceError(self.what, problem, self.url, str(cause))
        logger.warning("%s", error.operator_message)
        return error

    def post(self, path: str, **request: Any) -> bytes:
        """The body of a successful POST; everything else is a ``SpeechServiceError``."""
        import httpx

        body = bytearray()
        try:
            with self._client.stream("POST", path, **request) as response:
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_AUDIO_BYTES:
                        raise self.fail("sent more than any request needs")
        except httpx.TimeoutException as exc:
            raise self.fail(f"did not answer within {REPLY_TIMEOUT_S:.0f} s", exc) from exc
        except httpx.ConnectError as exc:
            raise self.fail("is unreachable", exc) from exc
        except httpx.HTTPError as exc:
            raise self.fail("dropped the connection", exc) from exc
        if response.status_code != 200:
            raise self.fail(f"answered HTTP {response.status_code}", bytes(body[:300]).decode(errors="replace"))
        return bytes(body)

    def close(self) -> None:
        self._client.close()


class OpenAIRecognizer:
    """A ``Recognizer`` backed by ``POST /audio/transcriptions``; the context goes as Whisper's prompt."""

    def __init__(self, url: str, model: str | None = None, *, api_key: str | None = None, language: str = "en") -> None:
        self._endpoint = OpenAIAudio(url, "speech recognition", api_key)
        self.name = model or OPENAI_DEFAULT_MODEL["asr"]
        self.language = language
        self.transcript(np.zeros(SAMPLE_RATE // 2, dtype=np.float32))  # proves the endpoint works

    def transcribe(self, audio: np.ndarray, prefix: str = "", context: str = "") -> str:
        if len(audio) == 0:
            return ""
        return words_after(prefix, self.transcript(audio, context))

    def transcript(self, audio: np.ndarray, prompt: str = "") -> str:
        form = {"model": self.name, "language": self.language, "response_format": "json"}
        if prompt:
            form["prompt"] = prompt
        body = self._endpoint.post(
            "/audio/transcriptions", data=form, files={"file": ("speech.wav", wav_bytes(audio), "audio/wav")}
        )
        try:
            text = json.loads(body)["text"]
        except (ValueError, KeyError, TypeError) as exc:
            raise self._endpoint.fail("answered with no transcript", exc) from exc
        if not isinstance(text, str):
            raise self._endpoint.fail("answered with no transcript", type(text).__name__)
        return text

    def word_ends(self, audio: np.ndarray, text: str, context: str = "") -> list[float]:
        """A service does not align words to audio: nothing is trimmed (see the module's docstring)."""
        return []

    def close(self) -> None:
        self._endpoint.close()


class OpenAIVoice(ServiceVoice):
    """A ``Synthesizer`` backed by ``POST /audio/speech``, asking for WAV (it says its own rate)."""

    def __init__(
        self, url: str, voice: str | None = None, *, model: str | None = None, api_key: str | None = None
    ) -> None:
        self._endpoint = OpenAIAudio(url, "speech synthesis", api_key)
        self.voice = voice or OPENAI_DEFAULT_VOICE
        self.model = model or OPENAI_DEFAULT_MODEL["tts"]
        self.name = self.voice
        self.sample_rate, _ = self._synthesize(PROBE_TEXT)

    def _synthesize(self, text: str) -> tuple[int, np.ndarray]:
        body = self._endpoint.post(
            "/audio/speech", json={"model": self.model, "voice": self.voice, "input": text, "response_format": "wav"}
        )
        try:
            return wav_samples(body)
        except ValueError as exc:
            raise self._endpoint.fail("answered with audio that is not 16-bit PCM WAV", exc) from exc

    def close(self) -> None:
        self._endpoint.close()
