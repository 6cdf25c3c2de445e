"""The offline backend: Silero VAD, streaming Whisper, a tool router or LLM, and Piper.

Everything runs on this machine; see ``backend`` for what is shared between
sessions and ``stream`` for one conversation.
"""

from __future__ import annotations

import argparse

from assistant.backends.local.devices import quiet_openmp

quiet_openmp()  # before Whisper or llama.cpp loads its OpenMP runtime (they load lazily)

from assistant.backends.local.backend import LocalBackend, LocalConfig  # noqa: E402


def create_backend(config: LocalConfig) -> LocalBackend:
    """The backend for ``assistant serve --backend local`` with ``config`` (models load when it starts)."""
    return LocalBackend(config)


def settings_from_args(args: argparse.Namespace) -> LocalConfig:
    """The settings from parsed ``serve`` (``talk``, ``bench latency``) options: the command line ends here."""
    return LocalConfig(
        asr_model=args.asr_model,
        chat_model=args.llm_model,
        llm_url=args.llm_url,
        llm_api_key=args.llm_api_key,
        asr_url=args.asr_url,
        tts_url=args.tts_url,
        speech_api_key=args.speech_api_key,
        dialogue=args.dialogue,
        voice=args.voice,
        silence_ms=args.silence_ms,
        eager_end_ms=args.eager_end_ms,
        turn_model=args.turn_model,
        agreed_end_ms=args.agreed_end_ms,
        threads=args.local_threads,
        decode_threads=args.local_decode_threads,
        device=args.device,
        allow_download=args.allow_download,
    )


__all__ = ["LocalBackend", "LocalConfig", "create_backend", "settings_from_args"]
