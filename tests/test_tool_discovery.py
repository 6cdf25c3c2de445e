"""Finding tools: the config file, modules, broken plugins, ``assistant tools`` and ``assistant serve``'s wiring."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from assistant.cli import build_parser, main
from assistant.cli.serve import build_tools
from assistant.config import CONFIG_ENV, ConfigError, load_config, parse_config
from assistant.protocol import FunctionCall, FunctionResponse
from assistant.tools import ToolRegistry
from assistant.tools.discovery import ToolSources, load_tools
from tests.support.tools import calling, tool_session

GOOD = '''
from assistant.tools import tool


@tool
def shout(text: str) -> str:
    """Say it louder.

    Args:
        text: What to say.
    """
    return text.upper()


@tool(name="whisper")
async def quiet(text: str) -> str:
    """Say it softly."""
    return text.lower()
'''

BROKEN = {
    "import_error.py": "import a_module_that_is_not_installed\n",
    "syntax_error.py": "def broken(:\n",
    "no_hint.py": "from assistant.tools import tool\n\n@tool\ndef vague(thing):\n    '''No type.'''\n",
    "no_tools.py": "def helper(x: int) -> int:\n    return x\n",
    "clash.py": "from assistant.tools import tool\n\n@tool\ndef calculate(expression: str) -> str:\n    '''Mine.'''\n",
}


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "good.py").write_text(GOOD)
    for name, source in BROKEN.items():
        (folder / name).write_text(source)
    return folder


# -- the config file --------------------------------------------------------------


def test_config_defaults_and_relative_paths(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "config.toml"
    path.parent.mkdir()
    text = textwrap.dedent(
        """
        [tools]
        modules = ["my_tools", "./local_tools.py"]
        disable = ["set_reminder"]
        timeout = 12

        [[tools.mcp]]
        name = "files"
        command = "npx"
        args = ["-y", "server-filesystem"]
        cwd = "work"
        env = { TOKEN = "${FILES_TOKEN}" }

        [[tools.mcp]]
        name = "search"
        url = "http://127.0.0.1:8000/mcp"
        headers = { Authorization = "Bearer ${SEARCH_TOKEN}" }
        enabled = false

        [knowledge]
        folders = ["~/notes"]
        """
    )
    config = parse_config(text, path, environ={"FILES_TOKEN": "f1", "SEARCH_TOKEN": "s2"})
    tools = config.tools
    assert tools.modules == ["my_tools", str(path.parent / "local_tools.py")]
    assert tools.timeout == 12 and tools.builtins is True
    assert tools.mcp[0].cwd == path.parent / "work" and tools.mcp[0].env == {"TOKEN": "f1"}
    assert tools.mcp[1].headers == {"Authorization": "Bearer s2"} and tools.mcp[1].transport == "http"
    assert config.model_extra == {"knowledge": {"folders": ["~/notes"]}}  # another part's section, kept
    sources = ToolSources.from_config(config, modules=["cli_tools"], builtins=True)
    assert sources.modules == ["my_tools", str(path.parent / "local_tools.py"), "cli_tools"]
    assert [server.name for server in sources.mcp_servers] == ["files"]  # disabled servers are left out
    assert sources.disable == ["set_reminder"] and sources.default_timeout_s == 12


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[tools]\nmodules = 'one'", "tools.modules: Input should be a valid list"),
        ("[tools]\nmodule = ['x']", "tools.module: Extra inputs are not permitted"),
        ("[[tools.mcp]]\nname = 'x'", "tools.mcp.0: Value error, give either command (stdio) or url"),
        ("[[tools.mcp]]\nname = 'x'\ncommand = 'a'\nurl = 'http://b'", "give either command (stdio) or url"),
        ("[[tools.mcp]]\nname = 'x'\nurl = 'ftp://b'", "url must start with http:// or https://"),
        ("[[tools.mcp]]\nname = 'x'\ncommand = 'a'\n[[tools.mcp]]\nname = 'x'\ncommand = 'b'", "repeated: x"),
        ("[[tools.mcp]]\nname = 'x'\ncommand = 'a'\nenv = { K = '${NOPE}' }", "uses ${NOPE}, which is not set"),
        ("[tools\n", "not valid TOML"),
        ("[tools]\ntimeout = 0", "tools.timeout: Input should be greater than 0"),
    ],
)
def test_config_errors_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.toml"
    with pytest.raises(ConfigError) as error:
        parse_config(text, path, environ={})
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)


def test_config_file_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert load_config(environ={}).path is None  # no file in the default place: defaults
    chosen = tmp_path / "chosen.toml"
    chosen.write_text("[tools]\nbuiltins = false\n")
    assert load_config(environ={CONFIG_ENV: str(chosen)}).tools.builtins is False
    assert load_config(chosen, environ={}).path == chosen.resolve()
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(environ={CONFIG_ENV: str(tmp_path / "missing.toml")})


# -- broken plugins are reported and skipped ------------------------------------------


async def test_broken_plugins_are_reported_and_skipped_and_the_rest_load(plugins: Path, tmp_path: Path) -> None:
    modules = [str(plugins / name) for name in ["good.py", *BROKEN]]
    registry = await load_tools(ToolSources(entry_points=False, modules=modules, disable=["set_reminder", "nope"]))
    try:
        names = [registered.spec.name for registered in registry.tools()]
        assert names == [
            "get_current_time",
            "calculate",
            "set_timer",
            "remember",
            "recall",
            "search_knowledge",
            "shout",
            "whisper",
        ]
        assert registry.get("shout").source == f"module {plugins / 'good.py'}"  # type: ignore[union-attr]
        assert registry.get("calculate").source == "builtin"  # type: ignore[union-attr]
        problems = {problem.source: problem.message for problem in registry.problems}
        assert problems.keys() == {
            f"module {plugins / 'import_error.py'}",
            f"module {plugins / 'syntax_error.py'}",
            f"module {plugins / 'no_hint.py'}",
            f"module {plugins / 'no_tools.py'}",
            f"module {plugins / 'clash.py'}: tool calculate",
            "disable nope",
        }
        assert problems[f"module {plugins / 'import_error.py'}"] == (
            f"ModuleNotFoundError: No module named 'a_module_that_is_not_installed' ({plugins / 'import_error.py'}:1)"
        )
        assert problems[f"module {plugins / 'syntax_error.py'}"].startswith("SyntaxError: ")
        assert "vague: parameter thing has no type hint" in problems[f"module {plugins / 'no_hint.py'}"]
        assert "defines no tools" in problems[f"module {plugins / 'no_tools.py'}"]
        assert "already registered (from builtin)" in problems[f"module {plugins / 'clash.py'}: tool calculate"]
    finally:
        await registry.aclose()


def test_assistant_tools_lists_sources_and_schemas_and_reports_problems(plugins: Path, tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", "")
    command = [sys.executable, "-m", "assistant", "tools", "--json", "--config", str(config)]
    result = subprocess.run(
        [*command, "--tools", str(plugins / "good.py"), "--tools", str(plugins / "import_error.py")],
        capture_output=True,
        text=True,
        env={**os.environ, "ASSISTANT_DATA_DIR": str(tmp_path / "data")},
        timeout=120,
    )
    assert result.returncode == 1, result.stderr  # a skipped plugin fails the listing, for plugin CI
    listing = json.loads(result.stdout)
    shout = next(entry for entry in listing["tools"] if entry["name"] == "shout")
    assert shout["source"] == f"module {plugins / 'good.py'}"
    assert shout["parameters"]["properties"]["text"] == {"type": "string", "description": "What to say."}
    assert shout["declaration"]["parameters"]["properties"]["text"] == {"type": "STRING", "description": "What to say."}
    assert {entry["name"] for entry in listing["tools"]} >= {"calculate", "recall", "whisper"}
    assert [problem["source"] for problem in listing["problems"]] == [f"module {plugins / 'import_error.py'}"]

    text = subprocess.run(
        [sys.executable, "-m", "assistant", "tools", "--no-builtin-tools", "--tools", str(plugins / "good.py")],
        capture_output=True,
        text=True,
        env={**os.environ, "ASSISTANT_CONFIG": str(config)},
        timeout=120,
    )
    assert text.returncode == 0, text.stderr
    assert f"shout  [module {plugins / 'good.py'}; timeout 30 s]" in text.stdout
    assert "    text: " in text.stdout and "Say it louder." in text.stdout


def test_a_bad_config_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(tmp_path / "c.toml", "[tools]\nx = 1\n")
    assert main(["tools", "--config", str(config)]) == 2
    assert capsys.readouterr().err.strip() == f"assistant: {config}: tools.x: Extra inputs are not permitted"


async def test_serve_builds_its_tools_from_options_and_config_and_survives_broken_plugins(
    plugins: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "data"))
    config = write(
        tmp_path / "config.toml", f"[tools]\nmodules = [{str(plugins / 'good.py')!r}]\ndisable = ['recall']\n"
    )
    args = build_parser().parse_args(
        ["serve", "--config", str(config), "--tools", str(plugins / "syntax_error.py"), "--tools", "no.such.module"]
    )
    tools = await build_tools(args)
    assert isinstance(tools, ToolRegistry)
    try:
        assert tools.handles("shout") and tools.handles("calculate") and not tools.handles("recall")
        assert [p.source for p in tools.problems] == [
            f"module {plugins / 'syntax_error.py'}",
            "module no.such.module",
        ]
        responses: list[FunctionResponse] = []
        calls = [
            FunctionCall(id="1", name="shout", args={"text": "hi"}),
            FunctionCall(id="2", name="calculate", args={"expression": "6*7"}),
        ]
        async with tool_session(tools, calling(*calls, into=responses)) as (client, _):
            assert await client.heard() == "done"
        assert {r.id: r.response for r in responses} == {
            "1": {"output": "HI"},
            "2": {"output": {"expression": "6*7", "result": 42}},
        }
    finally:
        await tools.aclose()


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
