"""The plugin's own tests: the function, and the tool as the registry runs it."""

from __future__ import annotations

import pytest
from assistant_unit_converter import Conversion, convert_units
from google.genai import types

from assistant.protocol import FunctionCall, FunctionResponse
from assistant.session import ToolContext
from assistant.tools import ToolError, ToolRegistry


def test_the_decorated_function_is_still_a_function() -> None:
    assert convert_units(5, "mi", "km") == Conversion(5, "mi", "km", 8.04672)
    assert convert_units(100, "C", "F").result == 212
    assert convert_units(1, "gal", "l").result == 3.785412


def test_mismatched_units_are_an_error_the_model_can_read() -> None:
    with pytest.raises(ToolError, match=r"cannot convert kg \(weight\) to km \(length\)"):
        convert_units(1, "kg", "km")


def test_the_declaration_is_one_gemini_accepts() -> None:
    declaration = convert_units.spec.declaration().model_dump(mode="json", exclude_none=True)
    accepted = types.FunctionDeclaration.model_validate(declaration)
    assert accepted.parameters is not None and accepted.parameters.required == ["value", "from_unit", "to_unit"]
    assert "mi" in (accepted.parameters.properties or {})["from_unit"].enum  # type: ignore[operator]


async def test_the_registry_validates_runs_and_serialises_it() -> None:
    registry = ToolRegistry()
    registry.add(convert_units, "test")

    async def unused(response: FunctionResponse) -> None:
        raise AssertionError("convert_units answers once")

    context = ToolContext(session_id="test", send_response=unused)
    ok = await registry.call(
        FunctionCall(id="1", name="convert_units", args={"value": 3, "from_unit": "ft", "to_unit": "m"}), context
    )
    bad = await registry.call(
        FunctionCall(id="2", name="convert_units", args={"value": 3, "from_unit": "parsec", "to_unit": "m"}), context
    )
    assert ok.response == {"output": {"value": 3.0, "from_unit": "ft", "to_unit": "m", "result": 0.9144}}
    assert bad.response is not None and bad.response["error"].startswith(
        "invalid arguments for convert_units: from_unit: 'parsec' is not one of"
    )
