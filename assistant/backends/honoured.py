"""What each backend does with each part of the Live protocol, field by field: the README's table.

The rows come from the protocol models themselves (every ``setup`` and
``generationConfig`` field, every client message kind, every server message
kind), so a field added to the protocol without a word here fails
``markdown_table`` (and its test) instead of going unmentioned. The local
column's "named" comes from the local backend's own list of fields it cannot
honour (``unhonoured``), the list its sessions log; the README holds this
module's output verbatim, and a test keeps the two equal.

Nothing heavy is imported: the models and two lists.
"""

from __future__ import annotations

from pydantic.alias_generators import to_camel

from assistant.backends.local.unhonoured import (
    HONOURED_GENERATION,
    TRANSCRIPTION_OPTIONS,
    UNHONOURED_REALTIME,
    UNHONOURED_SETUP,
    UNHONOURED_SPEECH,
)
from assistant.protocol.models import GenerationConfig, RealtimeInput, ServerContent, ServerMessage, Setup

NAMED = "named in the log, not acted on"

# setup: what the Gemini backend does besides passing a field on; what the local backend does with one it honours.
GEMINI_SETUP = {
    "model": "the upstream model (`--gemini-model` pins one)",
    "session_resumption": "the server's own handles; upstream resumption is always on",
    "context_window_compression": "passed on; on by default",
    "input_audio_transcription": "passed on; on by default",
    "output_audio_transcription": "passed on; on by default for AUDIO",
    "history_config": "passed on; set when a new upstream connection is re-seeded (3.1 and later)",
    "explicit_vad_signal": "passed on (Vertex AI only)",
    "generation_config.response_modalities": "passed on; AUDIO by default",
    "generation_config.speech_config": "passed on; the server's voice by default",
    "generation_config.thinking_config": "passed on; left out for models that refuse it (3.8)",
}
LOCAL_SETUP = {
    "model": "accepted (the local models are the server's)",
    "system_instruction": "the chat model's instruction",
    "tools": "function declarations (BLOCKING and NON_BLOCKING); Google's tools " + NAMED,
    "realtime_input_config": "turn-taking (VAD sensitivities, padding, silence, manual activity, activityHandling); "
    + ", ".join(to_camel(field) for field in UNHONOURED_REALTIME)
    + " "
    + NAMED,
    "session_resumption": "the server's own handles",
    **{field: f"{field.split('_')[0]} transcripts; their options {NAMED}" for field in TRANSCRIPTION_OPTIONS},
    "explicit_vad_signal": "voiceActivityDetectionSignal from the VAD",
    "generation_config.response_modalities": "AUDIO or TEXT replies",
    "generation_config.speech_config": "the voice (voiceName); "
    + ", ".join(to_camel(field) for field in UNHONOURED_SPEECH)
    + " "
    + NAMED,
    "generation_config.temperature": "chat model sampling",
    "generation_config.top_p": "chat model sampling",
    "generation_config.top_k": "chat model sampling",
    "generation_config.seed": "chat model sampling",
    "generation_config.max_output_tokens": "the chat model's reply length",
}

CLIENT_KINDS = {  # kind: (Gemini, local)
    "setup": ("passed on, with the defaults above", "as above"),
    "clientContent": ("passed on", "history; turnComplete asks for a reply (interrupting one)"),
    "realtimeInput.audio": ("passed on (16 kHz)", "VAD, turn-taking and streaming recognition (16 kHz)"),
    "realtimeInput.mediaChunks": ("as audio or video, by mime type", "as audio or video, by mime type"),
    "realtimeInput.video": ("passed on (at most about 1 fps)", "the latest frame, for the vision tool"),
    "realtimeInput.text": ("passed on", "a user turn"),
    "realtimeInput.audioStreamEnd": ("passed on", "ends the turn in progress"),
    "realtimeInput.activityStart": ("passed on", "opens a turn (barge-in unless NO_INTERRUPTION)"),
    "realtimeInput.activityEnd": ("passed on", "ends the turn"),
    "toolResponse": (
        "passed on, matched by id",
        "matched by id; a late answer spoken by its scheduling (INTERRUPT, WHEN_IDLE, SILENT)",
    ),
    "contextUpdate": ("passed on", "replaces the instruction and the tools"),
}

SERVER_KINDS = {  # kind: (Gemini, local); "" where the local backend never sends it
    "setupComplete": ("the server's", "the server's"),
    "serverContent.modelTurn": ("relayed", "the reply: 24 kHz audio or text"),
    "serverContent.turnComplete": ("relayed", "sent"),
    "serverContent.interrupted": ("relayed", "on barge-in"),
    "serverContent.generationComplete": ("relayed", "sent"),
    "serverContent.inputTranscription": ("relayed", "streaming, when asked for"),
    "serverContent.outputTranscription": ("relayed", "what is spoken, when asked for"),
    "serverContent.groundingMetadata": ("relayed", ""),
    "serverContent.urlContextMetadata": ("relayed", ""),
    "serverContent.turnCompleteReason": ("relayed", "NEED_MORE_INPUT, MALFORMED_FUNCTION_CALL"),
    "serverContent.waitingForInput": ("relayed", "with NEED_MORE_INPUT"),
    "serverContent.interimInputTranscription": ("relayed", ""),
    "serverContent.interactionStatus": ("relayed", ""),
    "toolCall": ("client functions relayed; server tools run in the server", "the same"),
    "toolCallCancellation": ("relayed", "on barge-in, for calls still out"),
    "usageMetadata": ("relayed", "the chat model's token counts, with turnComplete"),
    "goAway": ("the server's (drain); on Gemini's the backend moves to a new upstream", "the server's (drain)"),
    "sessionResumptionUpdate": ("the server's own handles", "the server's own handles"),
    "voiceActivityDetectionSignal": ("relayed", "with explicitVadSignal"),
    "voiceActivity": ("relayed", "the VAD's speech start and end, with audioOffset"),
    "serverToolActivity": ("the project's extension, with ?events=tools", "the same"),
}


def setup_fields() -> list[str]:
    """Every setup field, generationConfig's one by one, by their Python names."""
    top = [name for name in Setup.model_fields if name != "generation_config"]
    return [*top, *(f"generation_config.{name}" for name in GenerationConfig.model_fields)]


def client_kinds() -> list[str]:
    kinds = ["setup", "clientContent", "toolResponse", "contextUpdate"]
    return [*kinds, *(f"realtimeInput.{to_camel(name)}" for name in RealtimeInput.model_fields)]


def server_kinds() -> list[str]:
    top = [to_camel(name) for name in ServerMessage.model_fields if name != "server_content"]
    return [*(f"serverContent.{to_camel(name)}" for name in ServerContent.model_fields), *top]


def local_setup(field: str) -> str:
    """What the local backend does with ``field``, from its own list of what it cannot honour."""
    top, _, nested = field.partition(".")
    if top == "generation_config" and nested not in HONOURED_GENERATION:
        return NAMED
    if field in UNHONOURED_SETUP:
        return NAMED
    return LOCAL_SETUP[field]


def wire_name(field: str) -> str:
    """``generation_config.top_p`` as the wire writes it: ``generationConfig.topP``."""
    return ".".join(to_camel(part) for part in field.split("."))


def _rows(header: tuple[str, str, str], rows: list[tuple[str, str, str]]) -> list[str]:
    lines = [f"| {' | '.join(header)} |", "| --- | --- | --- |"]
    return lines + [f"| {a} | {b} | {c} |" for a, b, c in rows]


def markdown_table() -> str:
    """The README's table: setup fields, client message kinds, server message kinds, for each backend."""
    setup = [(f"`{wire_name(f)}`", GEMINI_SETUP.get(f, "passed on"), local_setup(f)) for f in setup_fields()]
    client = [(f"`{kind}`", *CLIENT_KINDS[kind]) for kind in client_kinds()]
    server = [(f"`{kind}`", SERVER_KINDS[kind][0], SERVER_KINDS[kind][1] or "never sent") for kind in server_kinds()]
    parts = [
        *_rows(("setup field", "Gemini backend", "local backend"), setup),
        "",
        *_rows(("client message", "Gemini backend", "local backend"), client),
        "",
        *_rows(("server message", "Gemini backend", "local backend"), server),
    ]
    return "\n".join(parts) + "\n"
