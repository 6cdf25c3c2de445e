"""Setup fields the local backend cannot act on are named, in the log and in ``--help``, not silently dropped."""

from __future__ import annotations

import json

import pytest

from assistant.backends.local.unhonoured import unhonoured_fields
from assistant.cli import main
from assistant.protocol import Setup, parse_client_message


def setup_of(fields: dict[str, object]) -> Setup:
    """A setup as the server parses it off the wire."""
    setup = parse_client_message(json.dumps({"setup": {"model": "local", **fields}})).setup
    assert setup is not None
    return setup


def test_a_plain_setup_has_nothing_to_name() -> None:
    setup = setup_of(
        {
            "generationConfig": {"responseModalities": ["AUDIO"], "temperature": 0.3, "topP": 0.9, "seed": 1},
            "tools": [{"functionDeclarations": [{"name": "f"}]}],
            "inputAudioTranscription": {},
            "outputAudioTranscription": {},
            "sessionResumption": {},
            "realtimeInputConfig": {"automaticActivityDetection": {"silenceDurationMs": 300}},
        }
    )
    assert unhonoured_fields(setup) == []


def test_google_tools_and_settings_without_a_local_part_are_named_once() -> None:
    setup = setup_of(
        {
            "generationConfig": {
                "thinkingConfig": {"thinkingBudget": 128},
                "mediaResolution": "MEDIA_RESOLUTION_LOW",
                "presencePenalty": 0.5,
                "temperature": 0.3,
            },
            "tools": [{"googleSearch": {}}, {"codeExecution": {}}, {"urlContext": {}}, {"googleSearch": {}}],
            "inputAudioTranscription": {"languageCodes": ["ta-IN"]},
            "proactivity": {"proactiveAudio": True},
            "historyConfig": {"initialHistoryInClientContent": True},
        }
    )
    assert unhonoured_fields(setup) == [
        "tools.googleSearch",
        "tools.codeExecution",
        "tools.urlContext",
        "generationConfig.mediaResolution",
        "generationConfig.presencePenalty",
        "generationConfig.thinkingConfig",
        "inputAudioTranscription options",
        "proactivity",
        "historyConfig",
    ]


def test_serve_help_lists_what_the_local_backend_cannot_honour(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "The local backend cannot honour Google tools (googleSearch, codeExecution, urlContext" in help_text
    assert "--drain-seconds N" in help_text
