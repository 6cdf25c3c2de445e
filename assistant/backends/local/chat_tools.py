"""How the chat model is told about tools, and how its calls are read back.

Gemini declares a tool's parameters in an OpenAPI subset (upper-case types,
``nullable``); llama.cpp and OpenAI-compatible servers want standard JSON
Schema. A GGUF model is constrained by a grammar to answer either in words
or with well-formed ``<tool_call>`` blocks naming offered tools, and the
blocks are parsed and their arguments checked against the schema before a
call is made.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from assistant.protocol import FunctionDeclaration

MAX_CALLS_PER_REPLY = 3
TOOL_OPEN, TOOL_CLOSE = "<tool_call>", "</tool_call>"


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool offered to the model, with its parameters as standard JSON Schema."""

    name: str
    description: str
    parameters: dict[str, Any]

    @classmethod
    def from_declaration(cls, declaration: FunctionDeclaration) -> ToolSpec:
        return cls(declaration.name, declaration.description or "", parameters_schema(declaration))


_GEMINI_TYPES = {"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"}
_SCHEMA_KEYS = {
    "type", "properties", "required", "items", "enum", "description", "minimum", "maximum",
    "minItems", "maxItems", "minLength", "maxLength", "pattern", "anyOf", "default", "title",
}  # fmt: skip


def gemini_to_json_schema(schema: Any) -> Any:
    """Gemini's OpenAPI-subset schema (upper-case types, ``nullable``) as standard JSON Schema."""
    if not isinstance(schema, dict):
        return schema
    converted: dict[str, Any] = {}
    for key, value in schema.items():
        camel = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key)
        if camel == "type" and isinstance(value, str):
            converted["type"] = value.lower() if value.upper() in _GEMINI_TYPES else value
        elif camel == "properties" and isinstance(value, dict):
            converted["properties"] = {name: gemini_to_json_schema(sub) for name, sub in value.items()}
        elif camel == "items":
            converted["items"] = gemini_to_json_schema(value)
        elif camel == "anyOf" and isinstance(value, list):
            converted["anyOf"] = [gemini_to_json_schema(sub) for sub in value]
        elif camel in _SCHEMA_KEYS:
            converted[camel] = value
    if schema.get("nullable") and isinstance(converted.get("type"), str):
        converted["type"] = [converted["type"], "null"]
    return converted


def parameters_schema(declaration: FunctionDeclaration) -> dict[str, Any]:
    """A declaration's parameters as JSON Schema (an empty object when it takes none)."""
    if isinstance(declaration.parameters_json_schema, dict):
        schema: dict[str, Any] = dict(declaration.parameters_json_schema)
    elif declaration.parameters:
        schema = gemini_to_json_schema(declaration.parameters)
    else:
        schema = {"type": "object", "properties": {}}
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    return schema


def validate_arguments(tool: ToolSpec, arguments: Any) -> str | None:
    """Why ``arguments`` do not fit ``tool``'s schema (None: they fit)."""
    import jsonschema

    try:
        jsonschema.validate(arguments, tool.parameters)
    except jsonschema.ValidationError as exc:
        return exc.message
    except jsonschema.SchemaError as exc:
        return f"the declared schema is invalid: {exc.message}"
    return None


def tool_call_grammar(tools: list[ToolSpec], require_tool: bool = False) -> str:
    """GBNF for "plain text, or up to three Hermes tool-call blocks valid for ``tools``"."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    calls = {
        "anyOf": [
            {
                "type": "object",
                "properties": {"name": {"const": tool.name}, "arguments": tool.parameters},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
            for tool in tools
        ]
    }
    rules = json_schema_to_gbnf(json.dumps(calls), prop_order=["name", "arguments"])
    rules = re.sub(r"^root ::=", "tool-call-json ::=", rules, flags=re.MULTILINE)
    block = f'"{TOOL_OPEN}" tool-call-json "{TOOL_CLOSE}"'
    return "\n".join(
        [
            "root ::= tool-calls" if require_tool else "root ::= tool-calls | spoken-text",
            f'tool-calls ::= {block} ("\\n" {block}){{0,{MAX_CALLS_PER_REPLY - 1}}}',
            "spoken-text ::= [^<] [^<]*",
            rules,
        ]
    )


def tools_prompt(tools: list[ToolSpec]) -> str:
    """The tool list in the Hermes system-prompt format tool-tuned models know."""
    listed = "\n".join(
        json.dumps(
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        )
        for t in tools
    )
    return (
        "You may call functions to help the user. The functions are listed in <tools></tools>:\n"
        f"<tools>\n{listed}\n</tools>\n"
        f'To call one, reply with only {TOOL_OPEN}{{"name": <function-name>, "arguments": <args-object>}}{TOOL_CLOSE}. '
        "Otherwise answer in plain words."
    )


def parse_tool_blocks(text: str) -> list[tuple[str, dict[str, Any]]]:
    """The calls in grammar-constrained output (well-formed by construction)."""
    calls = []
    for block in re.findall(re.escape(TOOL_OPEN) + r"(.*?)" + re.escape(TOOL_CLOSE), text, flags=re.DOTALL):
        data = json.loads(block)
        calls.append((str(data["name"]), dict(data["arguments"])))
    return calls


# -- llama.cpp ---------------------------------------------------------------------
