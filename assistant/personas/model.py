"""What a persona is, read from a TOML file a user can write.

A persona bundles who the assistant is (a system instruction), how it sounds
(a voice), what it knows (a knowledge collection, optionally filled from a
packaged corpus) and what it may do (an allowlist of server tools). The file
format, with every key:

```toml
name = "thiruvalluvar"            # optional; defaults to the file name; a-z 0-9 - _
display_name = "Thiruvalluvar"    # optional; shown in lists and the browser
description = "One line on what this persona is for."
instruction = '''Who the assistant is and how it answers.'''
client_instruction = "append"     # "append" (default): a client's own instruction follows the persona's;
                                  # "ignore": the persona's instruction is the only one
voice = "Charon"                  # prebuilt voice used when the client asks for none
tools = ["search_knowledge"]      # server tools offered; leave out to offer all, [] for none

[knowledge]                       # optional
collection = "thirukkural"        # searched by search_knowledge unless the model names another
corpus = "thirukkural"            # optional packaged corpus indexed into the collection on first use
passages = 3                      # passages per search (1-10)

[read_aloud]                      # optional: reading originals aloud with espeak-ng
voice = "ta"                      # espeak-ng voice
metadata_field = "tamil"          # the passage metadata field holding the original text
```

TOML rather than YAML: the standard library reads it (``tomllib``), it has
one way to write a string, and multi-line instructions need no indentation
rules. Unknown keys are errors, so a typo is reported instead of ignored.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from assistant.errors import AssistantError
from assistant.knowledge.store import KnowledgeError, validate_collection_name

PERSONA_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # whole-string (fullmatch): no separators, dots or newlines
SEARCH_TOOL = "search_knowledge"


class PersonaError(AssistantError):
    """A persona that cannot be found or read; the message names the file and the field."""


class UnknownPersona(PersonaError):
    """No published persona has that name; the message lists those that exist (and names no file)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class PersonaKnowledge(_Strict):
    collection: str
    corpus: str | None = None
    passages: int = Field(default=3, ge=1, le=10)

    @field_validator("collection")
    @classmethod
    def _valid_collection(cls, value: str) -> str:
        try:
            return validate_collection_name(value)
        except KnowledgeError as exc:
            raise ValueError(str(exc)) from None


class PersonaReadAloud(_Strict):
    voice: str = Field(min_length=1)
    metadata_field: str = Field(min_length=1)


class Persona(_Strict):
    """A validated persona; build one with ``parse_persona`` or ``load_persona``."""

    name: str
    display_name: str = ""
    description: str = ""
    instruction: str = Field(min_length=1)
    client_instruction: Literal["append", "ignore"] = "append"
    voice: str | None = None
    tools: tuple[str, ...] | None = None
    knowledge: PersonaKnowledge | None = None
    read_aloud: PersonaReadAloud | None = None

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not PERSONA_NAME.fullmatch(value):
            raise ValueError("use 1-64 lower-case letters, digits, '-' or '_'")
        return value

    @model_validator(mode="after")
    def _knowledge_needs_search(self) -> Persona:
        if self.knowledge is not None and self.tools is not None and SEARCH_TOOL not in self.tools:
            raise ValueError(f"a persona with [knowledge] must list {SEARCH_TOOL!r} in tools (or leave tools out)")
        return self

    @property
    def title(self) -> str:
        return self.display_name or self.name

    def allows_tool(self, name: str) -> bool:
        """Whether the server tool ``name`` is offered to sessions with this persona."""
        return self.tools is None or name in self.tools


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "persona"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (check the spelling against the documented format)"
        problems.append(f"{where}: {message}")
    return "; ".join(problems)


def parse_persona(text: str, *, origin: str, default_name: str) -> Persona:
    """Validate persona TOML; ``origin`` (a path or package) prefixes every error message."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PersonaError(f"{origin}: not valid TOML: {exc}") from exc
    data.setdefault("name", default_name)
    try:
        return Persona.model_validate(data)
    except ValidationError as exc:
        raise PersonaError(f"{origin}: {_describe(exc)}") from exc


def read_persona_file(path: Path) -> Persona:
    """A persona from a ``.toml`` file; its name defaults to the file name."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PersonaError(f"{path}: cannot read: {exc}") from exc
    return parse_persona(text, origin=str(path), default_name=path.stem)
