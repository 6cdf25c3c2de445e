"""Setup fields the local backend accepts but cannot act on, named instead of silently ignored.

A client written for Gemini Live may ask for things the local stack has no
part for: Google's own tools (search, code execution, URL context), thinking
budgets, proactive audio, transcription options, sampling settings beyond
the ones the chat model takes. The setup is still valid (the session runs),
so nothing is refused; each such field is named once per session in the log,
and the list is in ``assistant serve --help``, so nobody is misled.
Google tools never reach the chat model: only function declarations do.
"""

from __future__ import annotations

from assistant.protocol import Setup

# generationConfig fields the local stack acts on (voice, modalities and GenerationSettings).
HONOURED_GENERATION = frozenset(
    {"response_modalities", "speech_config", "temperature", "top_p", "top_k", "max_output_tokens", "seed"}
)
# Top-level setup fields the local stack has nothing for.
UNHONOURED_SETUP = (
    "context_window_compression",  # the chat model sees a fixed window of recent turns
    "proactivity",
    "history_config",
    "safety_settings",
    "avatar_config",
    "labels",
)
# realtimeInputConfig fields beyond turn-taking: only speech turns reach the recogniser, whatever turnCoverage says.
UNHONOURED_REALTIME = ("turn_coverage",)
TRANSCRIPTION_OPTIONS = ("input_audio_transcription", "output_audio_transcription")
# speechConfig fields beyond the voice: the recogniser listens for English, the voices are one speaker each.
UNHONOURED_SPEECH = ("language_code", "multi_speaker_voice_config")
SUMMARY = (
    "The local backend cannot honour Google tools (googleSearch, codeExecution, urlContext, ...), "
    "generationConfig fields other than responseModalities, speechConfig, temperature, topP, topK, "
    "maxOutputTokens and seed (thinkingConfig, mediaResolution, penalties, ...), speechConfig's languageCode "
    "and multiSpeakerVoiceConfig, realtimeInputConfig's turnCoverage, transcription options, "
    "contextWindowCompression, proactivity, historyConfig, safetySettings, avatarConfig or labels; a session that sets "
    "them runs without them, and the log names them once."
)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def unhonoured_fields(setup: Setup) -> list[str]:
    """The wire names of the fields ``setup`` sets that the local backend will not act on."""
    names: list[str] = []
    for tool in setup.tools or []:
        fields = sorted(tool.model_fields_set - {"function_declarations"})
        names += [f"tools.{_camel(field)}" for field in fields]
    generation = setup.generation_config
    if generation is not None:
        names += [
            f"generationConfig.{_camel(field)}"
            for field in sorted(generation.model_fields_set - HONOURED_GENERATION)
            if getattr(generation, field) is not None
        ]
        speech = generation.speech_config
        names += [
            f"generationConfig.speechConfig.{_camel(field)}"
            for field in UNHONOURED_SPEECH
            if speech is not None and getattr(speech, field) is not None
        ]
    realtime = setup.realtime_input_config
    names += [
        f"realtimeInputConfig.{_camel(field)}"
        for field in UNHONOURED_REALTIME
        if realtime is not None and getattr(realtime, field) is not None
    ]
    for field in TRANSCRIPTION_OPTIONS:
        options = getattr(setup, field)
        if options is not None and options.model_dump(exclude_none=True):
            names.append(f"{_camel(field)} options")
    names += [_camel(field) for field in UNHONOURED_SETUP if getattr(setup, field) is not None]
    return list(dict.fromkeys(names))
