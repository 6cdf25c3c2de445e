"""README's table of what each backend honours is the code's own, and agrees with what the local backend names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from assistant.backends.honoured import NAMED, local_setup, markdown_table, setup_fields, wire_name
from assistant.backends.local.unhonoured import unhonoured_fields
from assistant.protocol import Setup
from assistant.protocol.models import GenerationConfig

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"<!-- honoured-table:[^>]*-->\n(.*?)<!-- /honoured-table -->", re.DOTALL)


def test_the_readme_holds_the_table_the_code_writes() -> None:
    found = BLOCK.search(README.read_text(encoding="utf-8"))
    assert found is not None, "README.md lost its honoured-table block"
    assert found.group(1) == markdown_table(), (
        "README's table is stale: replace it with the output of "
        "python -c 'from assistant.backends.honoured import markdown_table; print(markdown_table(), end=\"\")'"
    )


def setup_with(field: str) -> Setup:
    """A setup (unvalidated) that sets only ``field``, the way ``unhonoured_fields`` looks at one."""
    set_to = object()
    top, _, nested = field.partition(".")
    values: dict[str, object] = {"model": "m"}
    values[top] = GenerationConfig.model_construct(None, **{nested: set_to}) if nested else set_to
    return Setup.model_construct(None, **values)


TRANSCRIPTION = {"input_audio_transcription", "output_audio_transcription"}  # their options, not the field itself
NESTED_LISTS = {"tools", "realtime_input_config", "generation_config.speech_config"}  # named field by field inside


@pytest.mark.parametrize("field", [f for f in setup_fields() if f not in TRANSCRIPTION | NESTED_LISTS])
def test_a_setup_field_is_named_by_the_local_backend_exactly_when_the_table_says_so(field: str) -> None:
    named = wire_name(field) in unhonoured_fields(setup_with(field))
    assert named == (local_setup(field) == NAMED)


def test_the_fields_named_inside_a_setting_are_the_ones_its_row_lists() -> None:
    setup = Setup.model_validate(
        {
            "model": "m",
            "tools": [{"functionDeclarations": [{"name": "f"}]}, {"googleSearch": {}}],
            "realtimeInputConfig": {"turnCoverage": "TURN_INCLUDES_ALL_INPUT", "activityHandling": "NO_INTERRUPTION"},
            "generationConfig": {"speechConfig": {"languageCode": "ta-IN", "voiceConfig": {}}},
            "inputAudioTranscription": {"languageCodes": ["ta-IN"]},
        }
    )
    named = unhonoured_fields(setup)
    assert named == [
        "tools.googleSearch",
        "generationConfig.speechConfig.languageCode",
        "realtimeInputConfig.turnCoverage",
        "inputAudioTranscription options",
    ]
    for row, word in [
        ("tools", "Google's tools"),
        ("realtime_input_config", "turnCoverage"),
        ("generation_config.speech_config", "languageCode"),
        ("input_audio_transcription", "options"),
    ]:
        assert word in local_setup(row) and NAMED in local_setup(row)
