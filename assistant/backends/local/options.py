"""Command-line options of the local backend.

Only the stage modules' constants are imported here; the model libraries
load when the backend starts.
"""

from __future__ import annotations

import argparse
import os

from assistant.backends.local.asr import DEFAULT_ASR_MODEL
from assistant.backends.local.devices import DEVICES
from assistant.backends.local.llm import DEFAULT_CHAT_MODEL
from assistant.backends.local.tts import DEFAULT_PIPER_VOICE
from assistant.backends.local.turns import DEFAULT_AGREED_MS, DEFAULT_EAGER_MS, DEFAULT_SILENCE_MS
from assistant.backends.local.unhonoured import SUMMARY


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    if isinstance(parser, argparse._ArgumentGroup):
        parser.description = SUMMARY  # what a client may ask for in vain, before it asks
    parser.add_argument(
        "--asr-model",
        default=DEFAULT_ASR_MODEL,
        help="Whisper model: a faster-whisper name such as tiny.en (packaged) or small.en (Hugging Face cache), a "
        "CTranslate2 directory, or a transformers checkpoint (a folder, or owner/repo such as "
        "openai/whisper-small.en from the cache) (default %(default)s)",
    )
    parser.add_argument(
        "--llm-model",
        default=os.environ.get("ASSISTANT_LLM_MODEL", DEFAULT_CHAT_MODEL),
        help="chat model: a .gguf path, owner/repo/file.gguf from the Hugging Face cache, the model name to "
        "ask --llm-url for, or 'none' (default %(default)s, packaged)",
    )
    parser.add_argument(
        "--llm-url",
        default=os.environ.get("ASSISTANT_LLM_URL"),
        help="OpenAI-compatible chat endpoint, e.g. http://127.0.0.1:8080/v1 (llama.cpp server, Ollama, vLLM)",
    )
    parser.add_argument(
        "--llm-api-key", default=os.environ.get("ASSISTANT_LLM_API_KEY"), help="bearer token for --llm-url"
    )
    parser.add_argument(
        "--asr-url",
        default=os.environ.get("ASSISTANT_ASR_URL"),
        help="speech recognition service instead of Whisper in this process: tcp://host:port (Wyoming, e.g. "
        "wyoming-faster-whisper) or http(s)://host/v1 (OpenAI-compatible /audio/transcriptions); --asr-model "
        "then names the service's model (default: its own)",
    )
    parser.add_argument(
        "--tts-url",
        default=os.environ.get("ASSISTANT_TTS_URL"),
        help="speech synthesis service instead of the voice in this process: tcp://host:port (Wyoming, e.g. "
        "wyoming-piper) or http(s)://host/v1 (OpenAI-compatible /audio/speech); --voice then names the "
        "service's voice (default: its own; alloy for OpenAI-compatible)",
    )
    parser.add_argument(
        "--speech-api-key",
        default=os.environ.get("ASSISTANT_SPEECH_API_KEY"),
        help="bearer token for OpenAI-compatible --asr-url and --tts-url",
    )
    parser.add_argument(
        "--dialogue",
        choices=["auto", "router", "model"],
        default="auto",
        help="router: built-in tools by meaning, the chat model only talks; model: the chat model calls "
        "tools itself; auto: router for the packaged small model, model otherwise (default)",
    )
    parser.add_argument(
        "--voice",
        default=DEFAULT_PIPER_VOICE,
        help="Piper voice (.onnx path, or joe: packaged), a transformers voice (a folder, or owner/repo such as "
        "facebook/mms-tts-eng from the cache) or espeak[:VOICE] (default %(default)s)",
    )
    parser.add_argument(
        "--silence-ms",
        type=int,
        default=DEFAULT_SILENCE_MS,
        help="silence that ends a turn when the client's setup does not say (default %(default)s)",
    )
    parser.add_argument(
        "--eager-end-ms",
        type=int,
        default=DEFAULT_EAGER_MS,
        help="shorter silence that ends a turn already heard as a complete request (a question, or a tool request "
        "with all it needs); only when the client sets no silence duration; 0 turns it off (default %(default)s)",
    )
    parser.add_argument(
        "--turn-model",
        default="smart-turn",
        help="end-of-turn model that hears whether the voice sounds finished: smart-turn (Smart Turn v3, carried "
        "by the pipecat-ai wheel), a Smart Turn v3 .onnx file, or none (default %(default)s)",
    )
    parser.add_argument(
        "--agreed-end-ms",
        type=int,
        default=DEFAULT_AGREED_MS,
        help="still shorter silence that ends a turn when the words make a complete request and the end-of-turn "
        "model says the voice sounds finished too; needs --eager-end-ms; 0 turns it off (default %(default)s)",
    )
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="where the models run: auto puts each on a CUDA GPU when its runtime sees one; cuda fails loudly "
        "when one cannot (default %(default)s)",
    )
    parser.add_argument("--local-threads", type=int, default=2, help="CPU threads per model (default %(default)s)")
    parser.add_argument(
        "--local-decode-threads",
        type=int,
        default=1,
        help="CPU threads for token-by-token decoding (Whisper, the chat model's tokens): small models decode "
        "faster on one beside the other models' work (default %(default)s)",
    )
    parser.add_argument(
        "--allow-download",
        action="store_true",
        help="let missing models download from the Hugging Face hub (off: only local files)",
    )
