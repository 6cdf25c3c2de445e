"""An example plugin for live-assistant: one typed function becomes a tool.

The model sees the declaration generated from the signature and docstring;
the registry validates its arguments (``from_unit`` must be one of the
listed units) before this code runs, and turns the returned dataclass into
JSON. A ``ToolError`` is an answer the model reads and can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from assistant.tools import ToolError, tool

Unit = Literal["mm", "cm", "m", "km", "in", "ft", "yd", "mi", "g", "kg", "oz", "lb", "ml", "l", "gal", "C", "F", "K"]

# Each unit as (quantity, factor to the quantity's base unit); temperatures are handled apart.
LINEAR: dict[str, tuple[str, float]] = {
    "mm": ("length", 0.001),
    "cm": ("length", 0.01),
    "m": ("length", 1.0),
    "km": ("length", 1000.0),
    "in": ("length", 0.0254),
    "ft": ("length", 0.3048),
    "yd": ("length", 0.9144),
    "mi": ("length", 1609.344),
    "g": ("weight", 0.001),
    "kg": ("weight", 1.0),
    "oz": ("weight", 0.028349523125),
    "lb": ("weight", 0.45359237),
    "ml": ("volume", 0.001),
    "l": ("volume", 1.0),
    "gal": ("volume", 3.785411784),
}
TO_KELVIN = {"C": lambda v: v + 273.15, "F": lambda v: (v - 32) * 5 / 9 + 273.15, "K": lambda v: v}
FROM_KELVIN = {"C": lambda k: k - 273.15, "F": lambda k: (k - 273.15) * 9 / 5 + 32, "K": lambda k: k}


@dataclass(frozen=True)
class Conversion:
    value: float
    from_unit: str
    to_unit: str
    result: float


@tool(timeout=2)
def convert_units(value: float, from_unit: Unit, to_unit: Unit) -> Conversion:
    """Convert a length, weight, volume or temperature from one unit to another.

    Args:
        value: The amount to convert.
        from_unit: The unit it is in (C, F and K are temperatures).
        to_unit: The unit wanted; it must measure the same kind of thing.
    """
    if from_unit in TO_KELVIN or to_unit in TO_KELVIN:
        if not (from_unit in TO_KELVIN and to_unit in TO_KELVIN):
            raise ToolError(f"cannot convert {from_unit} to {to_unit}: only temperatures convert to temperatures")
        result = FROM_KELVIN[to_unit](TO_KELVIN[from_unit](value))
    else:
        (kind, factor), (wanted, divisor) = LINEAR[from_unit], LINEAR[to_unit]
        if kind != wanted:
            raise ToolError(f"cannot convert {from_unit} ({kind}) to {to_unit} ({wanted})")
        result = value * factor / divisor
    return Conversion(value, from_unit, to_unit, round(result, 6))
