"""Personas: the shipped one, user files, entry points, validation and applying one to a setup."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from assistant.cli import main as cli_main
from assistant.personas import (
    Persona,
    PersonaError,
    UnknownPersona,
    apply_persona,
    discover_personas,
    load_persona,
)
from assistant.protocol import FunctionDeclaration, Setup, parse_client_message

LIBRARIAN = """
display_name = "Librarian"
description = "Finds things in your documents."
instruction = "You are a careful librarian."
voice = "Kore"
tools = ["search_knowledge"]

[knowledge]
collection = "books"
"""
LIBRARIAN_INSTRUCTION = "You are a careful librarian."


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ASSISTANT_CONFIG_DIR", str(tmp_path / "config"))
    folder = tmp_path / "config" / "personas"
    folder.mkdir(parents=True)
    return folder


def test_the_shipped_thiruvalluvar_persona(user_dir: Path) -> None:
    persona = load_persona("Thiruvalluvar")
    assert persona.name == "thiruvalluvar" and persona.title == "Thiruvalluvar"
    assert persona.knowledge is not None
    assert (persona.knowledge.collection, persona.knowledge.corpus, persona.knowledge.passages) == (
        "thirukkural",
        "thirukkural",
        3,
    )
    assert persona.allows_tool("search_knowledge") and not persona.allows_tool("set_timer")
    assert "search_knowledge" in persona.instruction and "meaning" in persona.instruction
    assert persona.read_aloud is not None and (persona.read_aloud.voice, persona.read_aloud.metadata_field) == (
        "ta",
        "tamil",
    )
    assert discover_personas()["thiruvalluvar"].origin == "shipped (thiruvalluvar.toml)"


def test_user_files_add_personas_and_override_shipped_ones(user_dir: Path) -> None:
    (user_dir / "librarian.toml").write_text(LIBRARIAN)
    (user_dir / "thiruvalluvar.toml").write_text('instruction = "My own Valluvar."\n')
    found = discover_personas()
    assert found["thiruvalluvar"].origin == str(user_dir / "thiruvalluvar.toml")
    assert load_persona("thiruvalluvar").instruction == "My own Valluvar."
    librarian = load_persona("librarian")
    assert (librarian.voice, librarian.tools, librarian.knowledge and librarian.knowledge.collection) == (
        "Kore",
        ("search_knowledge",),
        "books",
    )


def test_personas_elsewhere_are_found_by_name_once_published_never_by_path(user_dir: Path) -> None:
    folder = user_dir.parent / "published"
    folder.mkdir()
    elsewhere = folder / "elsewhere.toml"
    elsewhere.write_text(LIBRARIAN)
    for path in (str(elsewhere), "../published/elsewhere.toml", "elsewhere.toml"):
        with pytest.raises(UnknownPersona, match=r"^persona names are 1-64 lower-case letters.*available: "):
            load_persona(path, folders=[folder])
    with pytest.raises(UnknownPersona, match="no persona named 'elsewhere'"):
        load_persona("elsewhere")  # not published
    assert load_persona("Elsewhere", folders=[folder]).name == "elsewhere"
    assert discover_personas(folders=[folder])["elsewhere"].origin == str(elsewhere)
    (user_dir / "elsewhere.toml").write_text('instruction = "The user\'s own."\n')
    assert load_persona("elsewhere", folders=[folder]).instruction == LIBRARIAN_INSTRUCTION  # folders come later


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('instruction = "x"\nvoise = "Kore"\n', r"bad\.toml: voise: unknown key"),
        ('instruction = "x"\ntools = "search_knowledge"\n', r"bad\.toml: tools: "),
        ('description = "no instruction"\n', r"bad\.toml: instruction: Field required"),
        ('instruction = ""\n', r"bad\.toml: instruction: "),
        ('instruction = "x"\nname = "Bad Name"\n', r"name: use 1-64 lower-case letters"),
        ('instruction = "x"\nclient_instruction = "merge"\n', r"client_instruction: Input should be 'append' or"),
        ('instruction = "x"\n[knowledge]\ncollection = "Books!"\n', r"knowledge\.collection: invalid collection name"),
        ('instruction = "x"\n[knowledge]\ncollection = "b"\npassages = 50\n', r"knowledge\.passages: "),
        (
            'instruction = "x"\ntools = ["set_timer"]\n[knowledge]\ncollection = "b"\n',
            r"must list 'search_knowledge' in tools",
        ),
        ('instruction = "unterminated\n', r"bad\.toml: not valid TOML: .*line 1"),
    ],
)
def test_invalid_persona_files_name_the_file_and_the_field(user_dir: Path, content: str, message: str) -> None:
    (user_dir / "bad.toml").write_text(content)
    with pytest.raises(PersonaError, match=message):
        load_persona("bad")


def test_unknown_names_list_what_exists(user_dir: Path) -> None:
    with pytest.raises(PersonaError, match=r"no persona named 'nobody'; available: .*thiruvalluvar"):
        load_persona("nobody")


def test_installed_packages_ship_personas_through_entry_points(
    tmp_path: Path, user_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    package = site / "extrapersonas"
    package.mkdir(parents=True)
    (package / "librarian.toml").write_text(LIBRARIAN)
    (package / "__init__.py").write_text(
        textwrap.dedent(
            """
            from importlib import resources
            from assistant.personas import Persona

            LIBRARIAN = resources.files(__name__).joinpath("librarian.toml")

            def coach():
                return Persona(name="coach", instruction="You are a running coach.", tools=[])
            """
        )
    )
    info = site / "extrapersonas-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: extrapersonas\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[assistant.personas]\n"
        "librarian = extrapersonas:LIBRARIAN\n"
        "coach = extrapersonas:coach\n"
        "broken = extrapersonas:does_not_exist\n"
    )
    monkeypatch.syspath_prepend(str(site))
    found = discover_personas()
    assert found["librarian"].origin == "package extrapersonas"
    assert load_persona("librarian").knowledge is not None
    coach = load_persona("coach")
    assert coach.tools == () and not coach.allows_tool("search_knowledge")
    with pytest.raises(PersonaError, match=r"broken = extrapersonas:does_not_exist.*cannot load"):
        load_persona("broken")


def test_the_personas_command_lists_and_shows(user_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (user_dir / "bad.toml").write_text('instruction = "x"\nvoise = "Kore"\n')
    assert cli_main(["personas"]) == 1  # one persona file is invalid, and the listing says which
    out = capsys.readouterr().out
    assert "thiruvalluvar  Thiruvalluvar: A calm companion" in out
    assert "bad  INVALID:" in out and "voise: unknown key" in out
    assert cli_main(["personas", "thiruvalluvar"]) == 0
    assert '"collection": "thirukkural"' in capsys.readouterr().out
    assert cli_main(["personas", "nobody"]) == 1
    capsys.readouterr()
    published = user_dir.parent / "published"
    published.mkdir()
    (published / "librarian.toml").write_text(LIBRARIAN)
    assert cli_main(["personas", "--persona-dir", str(published), "librarian"]) == 0
    assert '"collection": "books"' in capsys.readouterr().out
    assert cli_main(["personas", str(published / "librarian.toml")]) == 0  # a file the user names is checked
    assert "librarian" in capsys.readouterr().out


PERSONA = Persona(name="p", instruction="You are Valluvar.", voice="Charon", tools=("search_knowledge",))


def _setup(**fields: object) -> Setup:
    message = parse_client_message(json.dumps({"setup": {"model": "models/gemini-live-2.5-flash", **fields}}))
    assert message.setup is not None
    return message.setup


def test_the_persona_instruction_comes_first_and_a_client_instruction_follows() -> None:
    client = _setup(systemInstruction={"parts": [{"text": "Answer in two sentences."}]})
    applied = apply_persona(client, PERSONA).setup
    assert applied.system_instruction is not None
    assert applied.system_instruction.text() == "You are Valluvar.\n\nAnswer in two sentences."
    assert client.system_instruction is not None
    assert client.system_instruction.text() == "Answer in two sentences."  # the client's setup is untouched
    assert apply_persona(_setup(), PERSONA).setup.system_instruction.text() == "You are Valluvar."  # type: ignore[union-attr]
    kiosk = PERSONA.model_copy(update={"client_instruction": "ignore"})
    assert apply_persona(client, kiosk).setup.system_instruction.text() == "You are Valluvar."  # type: ignore[union-attr]


def test_the_persona_voice_applies_only_when_the_client_chose_none() -> None:
    plain = _setup(generationConfig={"responseModalities": ["AUDIO"], "temperature": 0.3})
    applied = apply_persona(plain, PERSONA).setup
    assert applied.voice_name() == "Charon"
    assert applied.generation_config is not None
    assert applied.generation_config.temperature == 0.3 and applied.response_modalities() == ["AUDIO"]
    chosen = _setup(
        generationConfig={
            "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Puck"}}, "languageCode": "en-GB"}
        }
    )
    kept = apply_persona(chosen, PERSONA).setup
    assert kept.voice_name() == "Puck"
    assert kept.generation_config and kept.generation_config.speech_config
    assert kept.generation_config.speech_config.language_code == "en-GB"


def test_the_tool_allowlist_filters_server_tools_and_leaves_client_functions_alone() -> None:
    client = _setup(tools=[{"functionDeclarations": [{"name": "open_door"}]}])
    session = apply_persona(client, PERSONA)
    assert [d.name for d in session.setup.function_declarations()] == ["open_door"]
    server_tools = [FunctionDeclaration(name=n) for n in ("get_current_time", "search_knowledge", "set_timer")]
    assert [d.name for d in session.filter_server_tools(server_tools)] == ["search_knowledge"]
    everything = apply_persona(client, Persona(name="all", instruction="x"))
    assert everything.filter_server_tools(server_tools) == server_tools
    assert everything.collection is None
