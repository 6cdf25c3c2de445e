"""The offline backend: Silero VAD, streaming Whisper, a tool router or LLM, and Piper.

Everything runs on this machine; see ``backend`` for what is shared between
sessions and ``session`` for one conversation.
"""

from __future__ import annotations

import argparse

from assistant.backends.local.backend import LocalBackend, LocalConfig


def create_backend(args: argparse.Namespace) -> LocalBackend:
    """The backend for ``assistant serve --backend local`` and its options."""
    return LocalBackend(config_from_args(args))


def config_from_args(args: argparse.Namespace) -> LocalConfig:
    return LocalConfig(
        asr_model=args.asr_model,
        chat_model=args.llm_model,
        llm_url=args.llm_url,
        llm_api_key=args.llm_api_key,
        dialogue=args.dialogue,
        voice=args.voice,
        silence_ms=args.silence_ms,
        threads=args.local_threads,
        allow_download=args.allow_download,
    )


__all__ = ["LocalBackend", "LocalConfig", "config_from_args", "create_backend"]
