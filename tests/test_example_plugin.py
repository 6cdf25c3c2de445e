"""The example plugin, pip-installed into the test environment by the Makefile, as a user would install one."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

from assistant.protocol import FunctionCall, FunctionResponse
from assistant.tools.discovery import ENTRY_POINT_GROUP, ToolSources, load_tools
from tests.support.tools import calling, tool_session

EXAMPLE = Path(__file__).parent.parent / "examples" / "unit-converter"
SOURCE = "entry point convert_units = assistant_unit_converter:convert_units from assistant-unit-converter 0.1.0"


def test_the_plugin_is_installed_as_a_distribution_with_an_entry_point() -> None:
    [entry_point] = [
        ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == "convert_units"
    ]
    assert entry_point.dist is not None and entry_point.dist.name == "assistant-unit-converter", (
        "run `make test` (it installs examples/unit-converter)"
    )


def test_assistant_tools_lists_it_with_its_source_and_schema(tmp_path: Path) -> None:
    (tmp_path / "empty.toml").write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "tools", "--json", "--no-builtin-tools"],
        capture_output=True,
        text=True,
        env={**os.environ, "ASSISTANT_CONFIG": str(tmp_path / "empty.toml")},
        timeout=120,
        cwd=tmp_path,  # not the repository: the plugin must come from the installed distribution
    )
    assert result.returncode == 0, result.stderr
    [entry] = [tool for tool in json.loads(result.stdout)["tools"] if tool["name"] == "convert_units"]
    assert entry["source"] == SOURCE
    assert entry["timeout_s"] == 2
    assert entry["description"].startswith("Convert a length, weight, volume or temperature")
    parameters = entry["declaration"]["parameters"]
    assert parameters["required"] == ["value", "from_unit", "to_unit"]
    assert parameters["properties"]["value"] == {"type": "NUMBER", "description": "The amount to convert."}
    assert parameters["properties"]["to_unit"]["enum"][:4] == ["mm", "cm", "m", "km"]


async def test_a_session_calls_it(tmp_path: Path) -> None:
    registry = await load_tools(ToolSources(builtins=False))
    try:
        assert registry.get("convert_units").source == SOURCE  # type: ignore[union-attr]
        responses: list[FunctionResponse] = []
        calls = [
            FunctionCall(id="1", name="convert_units", args={"value": 5, "from_unit": "mi", "to_unit": "km"}),
            FunctionCall(id="2", name="convert_units", args={"value": 1, "from_unit": "kg", "to_unit": "km"}),
        ]
        async with tool_session(registry, calling(*calls, into=responses)) as (client, backend):
            assert await client.heard() == "done"
            assert await client.ask("thanks") == "echo: thanks"
        # The model was offered the plugin's declaration in the session's setup.
        offered = {d.name: d for d in backend.sessions[0].request.setup.function_declarations()}
        assert offered["convert_units"] == registry.get("convert_units").declaration  # type: ignore[union-attr]
        assert {r.id: r.response for r in responses} == {
            "1": {"output": {"value": 5.0, "from_unit": "mi", "to_unit": "km", "result": 8.04672}},
            "2": {"error": "cannot convert kg (weight) to km (length)"},
        }
    finally:
        await registry.aclose()


def test_the_plugins_own_tests_pass() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE)],
        capture_output=True,
        text=True,
        cwd=EXAMPLE,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout
