"""Tool schemas: Gemini's OpenAPI subset to JSON Schema, grammars, and checking arguments."""

from __future__ import annotations

from assistant.backends.local.chat_tools import (
    ToolSpec,
    gemini_to_json_schema,
    parameters_schema,
    parse_tool_blocks,
    tool_call_grammar,
    validate_arguments,
)
from assistant.protocol import FunctionDeclaration

LIGHTS = FunctionDeclaration(
    name="turn_on_lights",
    description="Switch the lights on.",
    parameters={
        "type": "OBJECT",
        "properties": {
            "room_name": {"type": "STRING", "enum": ["kitchen", "hall"]},
            "brightness": {"type": "INTEGER", "nullable": True, "minimum": 0, "maximum": 100},
            "colours": {"type": "ARRAY", "items": {"type": "STRING"}},
        },
        "required": ["room_name"],
    },
)


def test_gemini_schemas_become_json_schema() -> None:
    assert parameters_schema(LIGHTS) == {
        "type": "object",
        "properties": {
            "room_name": {"type": "string", "enum": ["kitchen", "hall"]},
            "brightness": {"type": ["integer", "null"], "minimum": 0, "maximum": 100},
            "colours": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["room_name"],
    }
    assert parameters_schema(FunctionDeclaration(name="now")) == {"type": "object", "properties": {}}
    raw = {"type": "object", "properties": {"q": {"type": "string"}}}
    assert parameters_schema(FunctionDeclaration(name="s", parameters_json_schema=raw)) == raw
    assert gemini_to_json_schema({"type": "STRING", "format": "enum", "any_of": [{"type": "NUMBER"}]}) == {
        "type": "string",
        "anyOf": [{"type": "number"}],
    }


def test_arguments_are_checked_against_the_schema() -> None:
    tool = ToolSpec.from_declaration(LIGHTS)
    assert validate_arguments(tool, {"room_name": "kitchen", "brightness": 40}) is None
    assert validate_arguments(tool, {"room_name": "garage"}) is not None
    assert validate_arguments(tool, {"brightness": 4}) == "'room_name' is a required property"


def test_the_grammar_admits_text_or_calls_of_declared_tools() -> None:
    grammar = tool_call_grammar([ToolSpec.from_declaration(LIGHTS)])
    assert grammar.splitlines()[0] == "root ::= tool-calls | spoken-text"
    assert '"\\"turn_on_lights\\""' in grammar and '"\\"kitchen\\""' in grammar
    assert tool_call_grammar([ToolSpec.from_declaration(LIGHTS)], require_tool=True).startswith("root ::= tool-calls\n")


def test_tool_blocks_parse() -> None:
    text = (
        '<tool_call>{"name": "a", "arguments": {"x": 1}}</tool_call>\n'
        '<tool_call>{"name": "b", "arguments": {}}</tool_call>'
    )
    assert parse_tool_blocks(text) == [("a", {"x": 1}), ("b", {})]
