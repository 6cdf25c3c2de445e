"""Argument schemas: from a Python signature to JSON Schema, and to what Gemini accepts.

Two schemas describe a tool's arguments:

- a JSON Schema (draft 2020-12), the source of truth: the registry validates
  every call against it, and raw-schema and MCP tools bring one of their own;
- the Gemini declaration's ``parameters``, the OpenAPI subset every Gemini
  model (Live included) accepts: upper-case types, ``nullable`` instead of a
  null branch, references inlined, string-only enums. It is derived from the
  JSON Schema, never written by hand.

For typed functions the JSON Schema comes from pydantic, which already knows
str, int, float, bool, Literal, Enum, lists, optionals, defaults, ``Annotated``
constraints and pydantic models; the docstring (Google, NumPy or reST style)
adds the description of the function and of each argument.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import docstring_parser
from pydantic import BaseModel, ConfigDict, Field, create_model

from assistant.errors import AssistantError

GEMINI_TYPES = {
    "string": "STRING",
    "integer": "INTEGER",
    "number": "NUMBER",
    "boolean": "BOOLEAN",
    "array": "ARRAY",
    "object": "OBJECT",
}
# Formats the Gemini API documents per type; others are dropped from the declaration
# (validation still applies them).
GEMINI_FORMATS = {"STRING": {"enum", "date-time"}, "INTEGER": {"int32", "int64"}, "NUMBER": {"float", "double"}}
# Keywords copied as they are (JSON Schema and Gemini spell them alike).
COPIED_KEYWORDS = {
    "description": "description",
    "default": "default",
    "minimum": "minimum",
    "maximum": "maximum",
    "exclusiveMinimum": "minimum",
    "exclusiveMaximum": "maximum",
    "minLength": "minLength",
    "maxLength": "maxLength",
    "pattern": "pattern",
    "minItems": "minItems",
    "maxItems": "maxItems",
    "minProperties": "minProperties",
    "maxProperties": "maxProperties",
}


class SchemaError(AssistantError, TypeError):
    """A tool's signature or schema cannot be offered to the model; the message says why."""


@dataclass(frozen=True, slots=True)
class Signature:
    """What a typed function tells the model, and how to turn arguments back into Python values."""

    description: str
    parameters: dict[str, Any]
    arguments_model: type[BaseModel]
    context_parameters: tuple[str, ...]


def describe_docstring(function: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """The function's description (summary and body, no sections) and each argument's description."""
    parsed = docstring_parser.parse(inspect.getdoc(function) or "")
    description = "\n\n".join(part for part in (parsed.short_description, parsed.long_description) if part)
    arguments = {param.arg_name: " ".join((param.description or "").split()) for param in parsed.params}
    return description, arguments


def signature_schema(function: Callable[..., Any], context_type: type, name: str) -> Signature:
    """Build the argument schema of ``function`` from its type hints and docstring.

    Parameters annotated ``context_type`` are injected by the registry, not
    offered to the model. Every other parameter needs a type hint: a missing
    one is an error at registration rather than a guess the model pays for.
    """
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception as exc:
        raise SchemaError(f"{name}: cannot resolve the type hints ({exc}); define the types at module level") from exc
    description, argument_docs = describe_docstring(function)
    fields: dict[str, Any] = {}
    context: list[str] = []
    parameters = list(inspect.signature(function).parameters.values())
    if parameters and parameters[0].name in ("self", "cls"):
        raise SchemaError(
            f"{name} looks like a method: decorating it in the class cannot bind {parameters[0].name}; "
            f"register tool(instance.{name}) instead"
        )
    for parameter in parameters:
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise SchemaError(f"{name}: *{parameter.name} cannot be declared to the model; name every argument")
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise SchemaError(f"{name}: {parameter.name} is positional-only; the model passes arguments by name")
        annotation = hints.get(parameter.name, inspect.Parameter.empty)
        if annotation is inspect.Parameter.empty:
            raise SchemaError(f"{name}: parameter {parameter.name} has no type hint")
        if annotation is context_type:
            context.append(parameter.name)
            continue
        if annotation is Any or annotation is object:
            raise SchemaError(
                f"{name}: parameter {parameter.name} is {annotation!r}; give it a type the model can fill"
            )
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        documented = argument_docs.get(parameter.name)
        fields[parameter.name] = (annotation, Field(default, description=documented) if documented else Field(default))
    try:
        model = create_model(  # type: ignore[call-overload]
            f"{name}_arguments", __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=False), **fields
        )
        parameters = _without_titles(model.model_json_schema())
    except Exception as exc:
        raise SchemaError(f"{name}: cannot build an argument schema: {exc}") from exc
    gemini_parameters(parameters, name)  # fail now, at registration, rather than at the first session
    return Signature(description, parameters, model, tuple(context))


SCHEMA_MAPS = ("properties", "$defs", "patternProperties")
SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
SCHEMA_VALUES = ("items", "additionalProperties", "not")


def _without_titles(schema: Any) -> Any:
    """Drop pydantic's generated titles ("Seconds"): noise in every declaration the model reads.

    Only schema positions are visited, so a property called ``title`` or a
    default value holding one is left alone.
    """
    if not isinstance(schema, dict):
        return schema
    result = {}
    for key, value in schema.items():
        if key == "title":
            continue
        if key in SCHEMA_MAPS and isinstance(value, dict):
            value = {name: _without_titles(item) for name, item in value.items()}
        elif key in SCHEMA_LISTS and isinstance(value, list):
            value = [_without_titles(item) for item in value]
        elif key in SCHEMA_VALUES:
            value = _without_titles(value)
        result[key] = value
    return result


def gemini_parameters(parameters: Mapping[str, Any], name: str = "tool") -> dict[str, Any] | None:
    """The Gemini ``parameters`` for a JSON Schema object; None when the tool takes no arguments.

    Gemini rejects an OBJECT with no properties, so a tool without
    arguments declares no parameters at all.
    """
    try:
        converted = _to_gemini(parameters, parameters, ())
    except SchemaError as exc:
        raise SchemaError(f"{name}: {exc}") from None
    if not converted.get("properties"):
        return None
    return converted


def _resolve_reference(root: Mapping[str, Any], reference: str) -> Mapping[str, Any]:
    if not reference.startswith("#/"):
        raise SchemaError(f"only local references are supported, not {reference!r}")
    target: Any = root
    for part in reference[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(target, Mapping) or part not in target:
            raise SchemaError(f"reference {reference!r} points nowhere")
        target = target[part]
    if not isinstance(target, Mapping):
        raise SchemaError(f"reference {reference!r} is not a schema")
    return target


def _to_gemini(schema: Mapping[str, Any], root: Mapping[str, Any], seen: tuple[str, ...]) -> dict[str, Any]:
    if "$ref" in schema:
        reference = schema["$ref"]
        if reference in seen:
            raise SchemaError(f"recursive type {reference.rsplit('/', 1)[-1]} cannot be declared to Gemini")
        siblings = {key: value for key, value in schema.items() if key != "$ref"}
        return _to_gemini({**_resolve_reference(root, reference), **siblings}, root, (*seen, reference))
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            return _union(schema, combinator, root, seen)
    if "allOf" in schema:
        parts = schema["allOf"]
        if len(parts) != 1:
            raise SchemaError("allOf with several schemas cannot be declared to Gemini")
        siblings = {key: value for key, value in schema.items() if key != "allOf"}
        return _to_gemini({**parts[0], **siblings}, root, seen)

    result: dict[str, Any] = {}
    json_type = schema.get("type")
    if isinstance(json_type, list):
        kinds = [kind for kind in json_type if kind != "null"]
        if "null" in json_type:
            result["nullable"] = True
        if len(kinds) > 1:
            siblings = {key: value for key, value in schema.items() if key != "type"}
            branches = [_to_gemini({**siblings, "type": kind}, root, seen) for kind in kinds]
            return {**result, "anyOf": branches}
        json_type = kinds[0] if kinds else None
    if json_type is None:
        if "properties" in schema:
            json_type = "object"
        elif "items" in schema or "prefixItems" in schema:
            json_type = "array"
        elif "enum" in schema or "const" in schema:
            values = schema.get("enum", [schema.get("const")])
            json_type = "string" if all(isinstance(value, str) for value in values) else None
    if json_type == "null":
        raise SchemaError("a value that can only be null cannot be declared to Gemini")
    gemini_type = GEMINI_TYPES.get(json_type) if json_type else None
    if json_type and gemini_type is None:
        raise SchemaError(f"unknown JSON Schema type {json_type!r}")
    if gemini_type:
        result["type"] = gemini_type

    for source, target in COPIED_KEYWORDS.items():
        if source in schema and target not in result:
            result[target] = schema[source]
    if isinstance(schema.get("examples"), list) and schema["examples"]:
        result["example"] = schema["examples"][0]
    fmt = schema.get("format")
    if fmt and fmt in GEMINI_FORMATS.get(gemini_type or "", set()):
        result["format"] = fmt

    values = schema["enum"] if "enum" in schema else [schema["const"]] if "const" in schema else None
    if values is not None:
        if all(isinstance(value, str) for value in values):
            result["enum"] = list(values)
        else:
            # Gemini enums are strings only; say the allowed values in words and let validation enforce them.
            allowed = "one of " + ", ".join(repr(value) for value in values)
            result["description"] = f"{result['description']} ({allowed})" if result.get("description") else allowed

    if gemini_type == "OBJECT":
        properties = schema.get("properties") or {}
        if properties:
            result["properties"] = {key: _to_gemini(value, root, seen) for key, value in properties.items()}
        required = [key for key in schema.get("required", []) if key in properties]
        if required:
            result["required"] = required
    if gemini_type == "ARRAY":
        if "prefixItems" in schema:
            branches = [_to_gemini(item, root, seen) for item in schema["prefixItems"]]
            result["items"] = branches[0] if len(branches) == 1 else {"anyOf": branches}
            result.setdefault("minItems", len(branches))
            result.setdefault("maxItems", len(branches))
        elif isinstance(schema.get("items"), Mapping):
            result["items"] = _to_gemini(schema["items"], root, seen)
        else:
            raise SchemaError("an array needs a schema for its items")
    return result


def _union(schema: Mapping[str, Any], combinator: str, root: Mapping[str, Any], seen: tuple[str, ...]) -> dict:
    options = schema[combinator]
    siblings = {key: value for key, value in schema.items() if key != combinator}
    nullable = any(option.get("type") == "null" for option in options)
    rest = [option for option in options if option.get("type") != "null"]
    if not rest:
        raise SchemaError("a value that can only be null cannot be declared to Gemini")
    if len(rest) == 1:
        result = _to_gemini({**rest[0], **siblings}, root, seen)
    else:
        result = _to_gemini({key: value for key, value in siblings.items() if key != "default"}, root, seen)
        result.pop("type", None)
        result["anyOf"] = [_to_gemini(option, root, seen) for option in rest]
        if "default" in siblings:
            result["default"] = siblings["default"]
    if nullable:
        result["nullable"] = True
    return result
