"""Spoken answers composed from the built-in tools' responses.

The response shapes are a contract between rooms (/work/briefs/tool-contracts.md):
``{"output": {...}}`` on success, ``{"error": "..."}`` on failure. A template
per tool is always right, costs nothing and starts speaking at once, where
the small offline LLM would paraphrase the numbers wrongly. Unknown shapes
(a client's own ``get_current_time`` that answers differently) still get a
sensible sentence from whatever fields are there.
"""

from __future__ import annotations

import math
from typing import Any

from assistant.backends.local.text import second_person

ASK_FOR = {
    "calculate": "Sure. What should I calculate?",
    "set_timer": "For how long should I set the timer?",
    "set_reminder": "What should I remind you about, and when?",
    "remember": "What should I remember?",
}
_OPERATORS = (
    ("**2", " squared"),
    ("**3", " cubed"),
    ("/100*", " percent of "),
    ("**", " to the power of "),
    ("*", " times "),
    ("/", " divided by "),
    ("+", " plus "),
    ("%", " modulo "),
)


def spoken_number(value: Any) -> str:
    """A result as a person would say it: no trailing ".0", at most a few decimals."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "undefined"
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.4g}" if abs(value) >= 1e-4 else f"{value:.2e}"
    return str(value)


def spoken_expression(expression: str) -> str:
    """ "12*7" read aloud as "12 times 7"."""
    spoken = expression.replace(" ", "")
    if spoken.startswith("sqrt(") and spoken.endswith(")"):
        return f"the square root of {spoken[5:-1]}"
    for symbol, words in _OPERATORS:
        spoken = spoken.replace(symbol, words)
    spoken = spoken.replace("-", " minus ").replace("  ", " ")
    return spoken.strip()


def spoken_duration(seconds: float) -> str:
    """ "5 minutes", "1 hour and 30 minutes", "90 seconds"."""
    seconds = round(seconds)
    parts = []
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if seconds < 120 and not hours:
        return f"{seconds} second{'s' * (seconds != 1)}"
    for amount, unit in ((hours, "hour"), (minutes, "minute"), (secs, "second")):
        if amount:
            parts.append(f"{amount} {unit}{'s' * (amount != 1)}")
    return " and ".join(parts)


def phrase_response(tool: str, variant: str | None, args: dict[str, Any], response: dict[str, Any] | None) -> str:
    """What to say for one tool response (``variant`` is the router intent, e.g. "date")."""
    response = response or {}
    if "error" in response:
        return f"Sorry, that didn't work: {response['error']}"
    output = response.get("output", response)
    if not isinstance(output, dict):
        return str(output)
    phrase = _PHRASES.get(tool)
    if phrase is not None:
        text = phrase(variant, args, output)
        if text:
            return text
    return _generic(output)


def _time(variant: str | None, args: dict[str, Any], output: dict[str, Any]) -> str | None:
    place = f" in {args['place']}" if args.get("place") else ""
    if variant == "date" and output.get("date"):
        return f"Today is {output['date']}."
    if output.get("time"):
        return f"It's {output['time']}{place}."
    return None


def _calculate(variant: str | None, args: dict[str, Any], output: dict[str, Any]) -> str | None:
    if "result" not in output:
        return None
    expression = str(output.get("expression") or args.get("expression") or "")
    result = spoken_number(output["result"])
    return f"{spoken_expression(expression)} is {result}." if expression else f"That's {result}."


def _timer(variant: str | None, args: dict[str, Any], output: dict[str, Any]) -> str | None:
    label = output.get("label") or args.get("label") or "timer"
    named = "Your timer" if label == "timer" else f"Your {label} timer"
    if output.get("status") == "fired":
        return f"{named} is done."
    seconds = output.get("seconds", args.get("seconds"))
    if isinstance(seconds, (int, float)):
        kind = "A timer" if label == "timer" else f"A {label} timer"
        return f"{kind} is set for {spoken_duration(seconds)}."
    return None


def _reminder(variant: str | None, args: dict[str, Any], output: dict[str, Any]) -> str | None:
    what = second_person(str(output.get("text") or args.get("text") or "")).strip()
    if output.get("status") == "fired":
        return f"Here's your reminder: {what}." if what else "Here's your reminder."
    seconds = args.get("seconds")
    when = f" in {spoken_duration(seconds)}" if isinstance(seconds, (int, float)) else ""
    return f"Okay, I'll remind you to {what}{when}." if what else None


def _remember(variant: str | None, args: dict[str, Any], output: dict[str, Any]) -> str | None:
    fact = second_person(str(output.get("stored") or args.get("fact") or "")).strip()
    return f"Okay, I'll remember that {fact}." if fact else "Okay, I'll remember that."


def _recall(variant: str | None, args: dict[str, Any], output: dict[str, Any]) -> str | None:
    facts = [fact.get("text", "") for fact in output.get("facts", []) if isinstance(fact, dict)]
    facts = [second_person(fact).strip().rstrip(".") for fact in facts if fact]
    if not facts:
        return "I don't have anything about that yet."
    if len(facts) == 1:
        return f"You told me that {facts[0]}."
    return f"You told me that {facts[0]}. Also, {facts[1]}."


def _describe(variant: str | None, args: dict[str, Any], output: dict[str, Any]) -> str | None:
    description = str(output.get("description") or "").strip()
    return f"Here's what I see. {description}" if description else None


def _search(variant: str | None, args: dict[str, Any], output: dict[str, Any]) -> str | None:
    """The best passage with its source; a packaged corpus's passage cites itself ("Kural 301, from...")."""
    passages = [p for p in output.get("passages", []) if isinstance(p, dict) and p.get("text")]
    if not passages:
        return "I couldn't find anything about that in your documents."
    best = passages[0]
    cites_itself = str(best.get("document", "")).startswith("corpus:")
    passage = " ".join(str(best["text"]).split())  # verse and PDF lines are one stretch of speech
    text = passage if cites_itself or not best.get("source") else f"From {best['source']}: {passage}"
    hint = output.get("read_aloud")
    field = str(hint.get("field", "")) if isinstance(hint, dict) else ""
    metadata = best.get("metadata")
    if field and isinstance(metadata, dict) and metadata.get(field):
        text += f" I can read it in {field.title()} if you like."
    return text


def _generic(output: dict[str, Any]) -> str:
    parts = [
        f"{key.replace('_', ' ')}: {spoken_number(value)}" for key, value in output.items() if value not in (None, "")
    ]
    return ("Done. " + "; ".join(parts) + ".") if parts else "Done."


_PHRASES = {
    "get_current_time": _time,
    "calculate": _calculate,
    "set_timer": _timer,
    "set_reminder": _reminder,
    "remember": _remember,
    "recall": _recall,
    "describe_view": _describe,
    "search_knowledge": _search,
}
