"""Declarations from typed functions: every supported type, docstrings, and Gemini's acceptance."""

from __future__ import annotations

import dataclasses
import enum
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import pytest
from google.genai import types
from pydantic import BaseModel, Field

from assistant.knowledge import KnowledgeService
from assistant.tools import CallContext, SchemaError, raw_tool, tool
from assistant.tools.builtin import builtin_tools
from assistant.tools.schema import gemini_parameters


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Point(BaseModel):
    """A point on the map."""

    lat: float = Field(description="latitude in degrees")
    lon: float
    label: str | None = None


class Route(BaseModel):
    stops: list[Point]
    mode: Literal["walk", "drive"] = "walk"


@dataclasses.dataclass
class Window:
    start: str
    minutes: int = 30


class Tree(BaseModel):
    children: list[Tree] = []


def accepted(declaration: dict[str, Any]) -> types.FunctionDeclaration:
    """What google-genai makes of our declaration (its Schema model forbids unknown fields)."""
    return types.FunctionDeclaration.model_validate(declaration)


def declared(function: Any) -> dict[str, Any]:
    return function.spec.declaration().model_dump(mode="json", by_alias=True, exclude_none=True)  # type: ignore[no-any-return]


def test_scalars_defaults_and_google_docstring() -> None:
    @tool
    def book(city: str, nights: int, budget: float, breakfast: bool = False) -> str:
        """Book a hotel room.

        Finds the cheapest room that fits.

        Args:
            city: Where to stay.
            nights: How many nights.
            budget: The most to pay per night,
                in euros.
            breakfast: Whether breakfast is included.

        Returns:
            The booking reference.
        """
        return "ref"

    declaration = declared(book)
    assert declaration["name"] == "book"
    assert declaration["description"] == "Book a hotel room.\n\nFinds the cheapest room that fits."
    assert declaration["parameters"] == {
        "type": "OBJECT",
        "properties": {
            "city": {"type": "STRING", "description": "Where to stay."},
            "nights": {"type": "INTEGER", "description": "How many nights."},
            "budget": {"type": "NUMBER", "description": "The most to pay per night, in euros."},
            "breakfast": {"type": "BOOLEAN", "description": "Whether breakfast is included.", "default": False},
        },
        "required": ["city", "nights", "budget"],
    }
    assert book.spec.parameters["additionalProperties"] is False
    accepted(declaration)


def test_literal_enum_and_int_enum() -> None:
    @tool
    def paint(color: Color, finish: Literal["matt", "gloss"] = "matt", level: Level = Level.LOW) -> None:
        """Paint."""

    properties = declared(paint)["parameters"]["properties"]
    assert properties["color"] == {"type": "STRING", "enum": ["red", "green"]}
    assert properties["finish"] == {"type": "STRING", "enum": ["matt", "gloss"], "default": "matt"}
    # Gemini enums are strings only: integer choices are typed INTEGER and named in the description.
    assert properties["level"] == {"type": "INTEGER", "default": 1, "description": "one of 1, 2"}
    accepted(declared(paint))


def test_lists_and_optionals() -> None:
    @tool
    def tag(names: list[str], weights: list[float] | None = None, note: Optional[str] = None, first: int | None = 0):  # noqa: UP045
        """Tag things."""

    properties = declared(tag)["parameters"]["properties"]
    assert properties["names"] == {"type": "ARRAY", "items": {"type": "STRING"}}
    assert properties["weights"] == {"type": "ARRAY", "items": {"type": "NUMBER"}, "nullable": True, "default": None}
    assert properties["note"] == {"type": "STRING", "nullable": True, "default": None}
    assert properties["first"] == {"type": "INTEGER", "nullable": True, "default": 0}
    assert declared(tag)["parameters"]["required"] == ["names"]
    accepted(declared(tag))


def test_pydantic_models_are_inlined() -> None:
    @tool
    def plan(route: Route, start: Point | None = None) -> None:
        """Plan a route."""

    properties = declared(plan)["parameters"]["properties"]
    point = {
        "type": "OBJECT",
        "description": "A point on the map.",
        "properties": {
            "lat": {"type": "NUMBER", "description": "latitude in degrees"},
            "lon": {"type": "NUMBER"},
            "label": {"type": "STRING", "nullable": True, "default": None},
        },
        "required": ["lat", "lon"],
    }
    assert properties["route"] == {
        "type": "OBJECT",
        "properties": {
            "stops": {"type": "ARRAY", "items": point},
            "mode": {"type": "STRING", "enum": ["walk", "drive"], "default": "walk"},
        },
        "required": ["stops"],
    }
    assert properties["start"] == {**point, "nullable": True, "default": None}
    accepted(declared(plan))


async def test_dataclass_parameters_arrive_as_instances() -> None:
    @tool
    def book(window: Window) -> str:
        """Book a slot."""
        return f"{window.start} for {window.minutes}"

    assert declared(book)["parameters"]["properties"]["window"] == {
        "type": "OBJECT",
        "properties": {"start": {"type": "STRING"}, "minutes": {"type": "INTEGER", "default": 30}},
        "required": ["start"],
    }
    invocation = book.bind({"window": {"start": "9:00"}}, None)  # type: ignore[arg-type]
    assert invocation() == "9:00 for 30"


def test_annotated_constraints_reach_the_declaration() -> None:
    @tool
    def pick(count: Annotated[int, Field(ge=1, le=10, description="how many")] = 3) -> None:
        """Pick."""

    assert declared(pick)["parameters"]["properties"]["count"] == {
        "type": "INTEGER",
        "description": "how many",
        "default": 3,
        "minimum": 1,
        "maximum": 10,
    }


@pytest.mark.parametrize(
    "doc",
    [
        """Send a message.

        Parameters
        ----------
        to : str
            Who gets it.
        text : str
            What it says.
        """,
        """Send a message.

        :param to: Who gets it.
        :param text: What it says.
        """,
    ],
    ids=["numpy", "rest"],
)
def test_numpy_and_rest_docstrings(doc: str) -> None:
    def send(to: str, text: str) -> None: ...

    send.__doc__ = doc
    declaration = declared(tool(send))
    assert declaration["description"] == "Send a message."
    assert declaration["parameters"]["properties"]["to"]["description"] == "Who gets it."
    assert declaration["parameters"]["properties"]["text"]["description"] == "What it says."


def test_context_parameter_is_injected_not_declared_and_no_arguments_means_no_parameters() -> None:
    @tool(name="look", behavior="NON_BLOCKING")
    async def look_around(context: CallContext) -> str:
        """Describe what the camera sees."""
        return "nothing"

    declaration = declared(look_around)
    assert declaration == {"name": "look", "description": "Describe what the camera sees.", "behavior": "NON_BLOCKING"}
    assert look_around.signature.context_parameters == ("context",)
    accepted(declaration)


def test_decorated_functions_stay_callable() -> None:
    @tool
    def double(x: int) -> int:
        """Double."""
        return 2 * x

    @tool(timeout=2)
    async def triple(x: int) -> int:
        """Triple."""
        return 3 * x

    assert double(4) == 8 and double.__name__ == "double" and double.__doc__ == "Double."
    assert triple.is_async and not double.is_async and triple.spec.timeout_s == 2


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def f(x): ...", "parameter x has no type hint"),
        ("def f(*args: int): ...", "*args cannot be declared"),
        ("def f(x: Any): ...", "give it a type the model can fill"),
        ("def f(tree: Tree): ...", "recursive type Tree"),
        ("def f(when: Missing): ...", "cannot resolve the type hints"),
    ],
)
def test_signatures_that_cannot_be_declared_fail_at_registration(source: str, message: str) -> None:
    namespace: dict[str, Any] = {"Any": Any, "Tree": Tree}
    exec(source, namespace)  # a function defined here, in this module's names
    with pytest.raises(SchemaError, match=re.escape(message)):
        tool(namespace["f"])


def test_bad_tool_names_are_refused() -> None:
    def f() -> None: ...

    with pytest.raises(SchemaError, match="not allowed"):
        tool(name="has space")(f)


def test_raw_json_schema_with_refs_unions_and_type_lists() -> None:
    schema = {
        "type": "object",
        "$defs": {"Unit": {"type": "string", "enum": ["km", "mi"]}},
        "properties": {
            "distance": {"type": ["number", "null"], "exclusiveMinimum": 0},
            "unit": {"$ref": "#/$defs/Unit", "description": "which unit"},
            "value": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]},
            "when": {"type": "string", "format": "date-time"},
            "email": {"type": "string", "format": "email"},
            "kind": {"const": "fixed"},
        },
        "required": ["unit"],
    }
    parameters = gemini_parameters(schema)
    assert parameters is not None
    assert parameters["properties"] == {
        "distance": {"type": "NUMBER", "nullable": True, "minimum": 0},
        "unit": {"type": "STRING", "enum": ["km", "mi"], "description": "which unit"},
        "value": {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]},
        "pair": {
            "type": "ARRAY",
            "items": {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]},
            "minItems": 2,
            "maxItems": 2,
        },
        "when": {"type": "STRING", "format": "date-time"},
        "email": {"type": "STRING"},
        "kind": {"type": "STRING", "enum": ["fixed"]},
    }
    handler_tool = raw_tool("lookup", "Look something up.", schema, lambda arguments, context: arguments)
    accepted(declared(handler_tool))


def test_every_builtin_declaration_is_accepted_by_google_genai(tmp_path: Path) -> None:
    names = []
    for builtin in builtin_tools(knowledge=KnowledgeService(tmp_path / "store")):
        declaration = accepted(declared(builtin))
        names.append(declaration.name)
    assert names == [
        "get_current_time",
        "calculate",
        "set_timer",
        "set_reminder",
        "remember",
        "recall",
        "search_knowledge",
    ]


def test_decorated_functions_keep_their_signature_for_mypy(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        textwrap.dedent(
            """
            from typing import assert_type
            from assistant.tools import tool

            @tool
            def add(a: int, b: int = 1) -> int:
                '''Add.'''
                return a + b

            @tool(timeout=3)
            async def fetch(url: str) -> bytes:
                '''Fetch.'''
                return b""

            async def use() -> None:
                assert_type(await fetch("https://example.org"), bytes)

            assert_type(add(1, b=2), int)
            add("one")
            add(1, c=2)
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=silent", str(sample)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    # Exactly the two wrong calls are errors: the types and names of the signature survived.
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 2, result.stdout
    assert 'Argument 1 to "__call__" of "FunctionTool" has incompatible type "str"; expected "int"' in errors[0]
    assert 'Unexpected keyword argument "c"' in errors[1]
