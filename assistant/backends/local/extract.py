"""Deterministic arguments for the built-in tools, from what the user said.

A 135 M-parameter model cannot be trusted to turn "what's twelve times
seven" into ``{"expression": "12*7"}``, and everyday requests must be right.
These parsers are small, rule-based and tested phrase by phrase. They read
Whisper's output, which writes some numbers as digits ("12 times 7") and
others as words ("five minutes"), so both are handled.

Each parser returns None when the request lacks what the tool needs; the
dialogue then asks for it instead of guessing.
"""

from __future__ import annotations

import ast
import re
import zoneinfo
from datetime import datetime, timedelta
from functools import lru_cache

_UNITS = {
    "zero": 0, "oh": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_NUMBER_WORDS = set(_UNITS) | set(_TENS) | set(_SCALES)
_WORD_HYPHEN = re.compile(r"(?<=[a-z])-(?=[a-z])")
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[a-z]+(?:'[a-z]+)?|[-+*/^%():\u00d7\u00f7=]")


def tokens(text: str) -> list[str]:
    """Lower-case words, numbers and arithmetic symbols, with number words turned into digits."""
    lowered = _WORD_HYPHEN.sub(" ", text.lower().replace("\u2019", "'"))
    raw = _TOKEN.findall(lowered.replace("-", " - "))
    return numbers_to_digits([token.replace(",", "") if token[0].isdigit() else token for token in raw])


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(round(value, 10))


def numbers_to_digits(words: list[str]) -> list[str]:
    """Replace runs of number words ("twenty five", "a hundred and five", "three point five") by digits."""
    out: list[str] = []
    index = 0
    while index < len(words):
        value, used = _read_number(words, index)
        if used:
            out.append(_format_number(value))
            index += used
        else:
            out.append(words[index])
            index += 1
    return out


def _read_number(words: list[str], start: int) -> tuple[float, int]:
    """The number spelled from ``words[start]``, and how many words it took (0: none)."""
    total = 0.0
    current = 0.0
    index = start
    seen = False
    while index < len(words):
        word = words[index]
        if word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word in _SCALES and (seen or word == "hundred"):
            scale = _SCALES[word]
            if scale == 100:
                current = (current or 1) * 100
            else:
                total += (current or 1) * scale
                current = 0
        elif word == "a" and not seen and index + 1 < len(words) and words[index + 1] in _SCALES:
            current = 1
        elif word == "and" and seen and index + 1 < len(words) and words[index + 1] in _NUMBER_WORDS:
            if not re.fullmatch(r"hundred|thousand|million|billion", words[index - 1]):
                break
        elif re.fullmatch(r"\d+(?:\.\d+)?", word) and not seen:
            # digits followed by a scale word: "5 hundred"
            if index + 1 < len(words) and words[index + 1] in _SCALES:
                current = float(word)
            else:
                break
        else:
            break
        seen = True
        index += 1
    if not seen:
        return 0.0, 0
    value = total + current
    if index + 1 < len(words) and words[index] == "point" and words[index + 1] in _UNITS:
        digits = ""
        index += 1
        while index < len(words) and words[index] in _UNITS and _UNITS[words[index]] < 10:
            digits += str(_UNITS[words[index]])
            index += 1
        value = float(f"{int(value)}.{digits}")
    return value, index - start


def _is_number(token: str) -> bool:
    return bool(re.fullmatch(r"\d+(?:\.\d+)?", token))


# -- calculate ---------------------------------------------------------------

_BINARY_WORDS = [
    (("multiplied", "by"), "*"),
    (("divided", "by"), "/"),
    (("to", "the", "power", "of"), "**"),
    (("raised", "to", "the", "power", "of"), "**"),
    (("raised", "to"), "**"),
    (("take", "away"), "-"),
    (("percent", "of"), "/100*"),
    (("plus",), "+"),
    (("minus",), "-"),
    (("less",), "-"),
    (("times",), "*"),
    (("x",), "*"),
    (("over",), "/"),
    (("mod",), "%"),
    (("modulo",), "%"),
    (("+",), "+"),
    (("-",), "-"),
    (("*",), "*"),
    (("\u00d7",), "*"),
    (("/",), "/"),
    (("\u00f7",), "/"),
    (("^",), "**"),
]
_POSTFIX_WORDS = {"squared": "**2", "cubed": "**3", "percent": "/100", "%": "/100"}
_VERB_FORMS = [
    (re.compile(r"\b(?:add|sum of) (\S+) (?:and|to|plus) (\S+)"), "{0}+{1}"),
    (re.compile(r"\bsubtract (\S+) from (\S+)"), "{1}-{0}"),
    (re.compile(r"\b(?:multiply|product of) (\S+) (?:by|and|times|with) (\S+)"), "{0}*{1}"),
    (re.compile(r"\bdivide (\S+) by (\S+)"), "{0}/{1}"),
    (re.compile(r"\bdifference between (\S+) and (\S+)"), "{0}-{1}"),
]


def arithmetic_expression(text: str) -> str | None:
    """The arithmetic in a spoken request, as the ``calculate`` tool's expression.

    "what's twelve times seven" gives "12*7"; None when there is no arithmetic.
    """
    words = tokens(text)
    joined = " ".join(words)
    for pattern, template in _VERB_FORMS:
        match = pattern.search(joined)
        if match and all(_is_number(group) for group in match.groups()):
            return template.format(*match.groups())
    expression = ""
    expect_operand = True
    index = 0
    while index < len(words):
        word = words[index]
        if expect_operand:
            if word == "square" and words[index + 1 : index + 3] == ["root", "of"] and index + 3 < len(words):
                if _is_number(words[index + 3]):
                    expression += f"sqrt({words[index + 3]})"
                    expect_operand = False
                    index += 4
                    continue
            if word == "(":
                expression += "("
            elif _is_number(word):
                expression += word
                expect_operand = False
            elif word == "-" and index + 1 < len(words) and _is_number(words[index + 1]):
                expression += "-"
            index += 1
            continue
        operator = _binary_at(words, index)
        if operator is not None:
            symbol, used = operator
            expression += symbol
            expect_operand = True
            index += used
            continue
        if word in _POSTFIX_WORDS:
            expression += _POSTFIX_WORDS[word]
        elif word == ")":
            expression += ")"
        elif _is_number(word):
            break  # two numbers in a row: not one expression
        index += 1
    expression = expression.rstrip("+-*/%")
    if not re.search(r"[-+*/%]|sqrt", expression.lstrip("-")) or not _is_valid_expression(expression):
        return None
    return expression


def _binary_at(words: list[str], index: int) -> tuple[str, int] | None:
    for phrase, symbol in _BINARY_WORDS:
        if tuple(words[index : index + len(phrase)]) == phrase:
            return symbol, len(phrase)
    return None


def _is_valid_expression(expression: str) -> bool:
    try:
        ast.parse(expression, mode="eval")
    except SyntaxError:
        return False
    return True


# -- durations and times --------------------------------------------------------

_UNIT_SECONDS = {
    "second": 1, "seconds": 1, "sec": 1, "secs": 1, "s": 1,
    "minute": 60, "minutes": 60, "min": 60, "mins": 60,
    "hour": 3600, "hours": 3600, "hr": 3600, "hrs": 3600, "h": 3600,
    "day": 86400, "days": 86400,
}  # fmt: skip
_DURATION_PART = re.compile(
    r"(?:(?P<number>\d+(?:\.\d+)?)|(?P<article>an?)|(?P<half>half an?|half))\s+(?P<unit>"
    + "|".join(sorted(_UNIT_SECONDS, key=len, reverse=True))
    + r")\b(?P<and_half>\s+and\s+a\s+half)?"
)
_QUARTER_HOUR = re.compile(r"\b(?:a\s+)?quarter\s+(?:of\s+)?an\s+hour\b")
_NUMBER_AND_HALF = re.compile(r"\b(\d+)\s+and\s+a\s+half\s+(\w+)")


def duration_seconds(text: str) -> float | None:
    """The duration a request names ("five minutes", "an hour and a half", "90 seconds"), in seconds.

    Parts add up only as people say them, larger unit first ("1 hour and 30
    minutes"); a repeated "3 seconds, 3 seconds" is one duration, not six.
    """
    spoken = " ".join(tokens(text))
    spoken = _NUMBER_AND_HALF.sub(lambda m: f"{float(m.group(1)) + 0.5:g} {m.group(2)}", spoken)
    quarter = _QUARTER_HOUR.search(spoken)
    if quarter:
        return 900.0
    total = 0.0
    previous_unit: float | None = None
    previous_end = 0
    for match in _DURATION_PART.finditer(spoken):
        unit = _UNIT_SECONDS[match.group("unit")]
        joined = previous_unit is not None and re.fullmatch(r"[\s,]*(?:and)?\s*", spoken[previous_end : match.start()])
        if previous_unit is not None and not (joined and unit < previous_unit):
            break
        if match.group("number"):
            amount = float(match.group("number"))
        elif match.group("half"):
            amount = 0.5
        else:
            amount = 1.0
        if match.group("and_half"):
            amount += 0.5
        total += amount * unit
        previous_unit, previous_end = unit, match.end()
    return total if total > 0 else None


_CLOCK_TIME = re.compile(r"\bat (\d{1,2})(?:[:.](\d{2}))?\s*(a\.?m\.?|p\.?m\.?)?(?=\W|$)")


def seconds_until_clock_time(text: str, now: datetime) -> float | None:
    """Seconds from ``now`` to a clock time the request names ("at 5 pm", "at 17:30")."""
    spoken = " ".join(tokens(text)).replace(" : ", ":")
    spoken = re.sub(r"\b(\d{1,2}) (\d{2}) (am|pm)\b", r"\1:\2 \3", spoken)
    match = _CLOCK_TIME.search(spoken)
    if match is None:
        return None
    hour = int(match.group(1))
    minute = int(match.group(2) or 0)
    meridiem = (match.group(3) or "").replace(".", "")
    if hour > 23 or minute > 59:
        return None
    if meridiem == "pm" and hour < 12:
        hour += 12
    elif meridiem == "am" and hour == 12:
        hour = 0
    target = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if target <= now:
        # "at 5" said at 6 pm means tomorrow's 5, unless am/pm was left out and 5 pm is still ahead
        if not meridiem and hour < 12 and target + timedelta(hours=12) > now:
            target += timedelta(hours=12)
        else:
            target += timedelta(days=1)
    return (target - now).total_seconds()


# -- timers and reminders ----------------------------------------------------------

_NOT_LABELS = {"a", "an", "the", "my", "new", "another", "one", "quick", "countdown", "kitchen"} | set(_UNIT_SECONDS)


def timer_label(text: str) -> str | None:
    """A timer's name: "a tea timer", "a timer for the pasta", "a timer called eggs"."""
    spoken = " ".join(tokens(text))
    named = re.search(r"\btimer (?:called|named|for the|for my) ([a-z][a-z ]*?)(?= for \d| \d|$)", spoken)
    if named and duration_seconds(named.group(1)) is None:
        return named.group(1).strip()
    before = re.search(r"\b([a-z]+) timer\b", spoken)
    if before and before.group(1) not in _NOT_LABELS and not _is_number(before.group(1)):
        return before.group(1)
    after = re.search(r"\btimer for ([a-z][a-z ]*?)(?= for \d| \d|$)", spoken)
    if after and duration_seconds(after.group(1)) is None and after.group(1).split()[0] not in _NOT_LABELS:
        return after.group(1).strip()
    return None


_REMINDER_LEADS = re.compile(
    r"^(?:please |can you |could you |hey |ok |okay )*"
    r"(?:remind me|set (?:a|an) reminder|make (?:a|an) reminder|don't let me forget|make sure i remember|"
    r"(?:ping|nudge) me|give me a (?:nudge|reminder)|reminder)"
    r"(?: (?:to|that|about|of))?\s*",
    re.IGNORECASE,
)
_RELATIVE_TIME = re.compile(
    r"\b(?:in|after)\s+(?:(?:\d+(?:\.\d+)?|an?|half an?|a quarter of an|[a-z]+(?: [a-z]+)?)\s+)?"
    r"(?:and a half\s+)?(?:seconds?|secs?|minutes?|mins?|hours?|hrs?|days?)(?:\s+and\s+(?:\d+|[a-z]+)\s+"
    r"(?:seconds?|minutes?|hours?)|\s+and\s+a\s+half)?\b",
    re.IGNORECASE,
)
_CLOCK_PHRASE = re.compile(
    r"\bat\s+(?:\d{1,2}(?::\d{2})?|[a-z]+(?: [a-z]+)?)\s*(?:a\.?m\.?|p\.?m\.?|o'clock)?(?=\W|$)", re.IGNORECASE
)


def reminder(text: str, now: datetime) -> tuple[str, float | None] | None:
    """What to remind the user of and in how many seconds ("remind me to call mum in ten minutes")."""
    cleaned = text.strip().rstrip(".!?")
    first = _RELATIVE_TIME.match(cleaned)  # "in ten minutes remind me to ...": the time goes last
    if first is not None:
        cleaned = f"{cleaned[first.end() :].lstrip(' ,')} {first.group(0)}"
    lead = _REMINDER_LEADS.search(cleaned)
    if lead is None:
        return None
    rest = cleaned[lead.end() :]
    seconds: float | None = None
    relative = _RELATIVE_TIME.search(rest)
    if relative is not None:
        seconds = duration_seconds(relative.group(0))
        rest = rest[: relative.start()] + rest[relative.end() :]
    else:
        clock = _CLOCK_PHRASE.search(rest)
        if clock is not None:
            seconds = seconds_until_clock_time(clock.group(0), now)
            if seconds is not None:
                rest = rest[: clock.start()] + rest[clock.end() :]
    what = re.sub(r"^\s*(?:to|that|about)\s+", "", re.sub(r"\s+", " ", rest)).strip(" ,")
    return (what, seconds) if what else None


# -- memory, knowledge, time zones ---------------------------------------------------

_REMEMBER_LEADS = re.compile(
    r"^(?:please |hey |ok |okay |can you |could you )*"
    r"(?:remember|make a note|take a note|note|keep in mind|don't forget|do not forget|save|store|memori[sz]e|"
    r"just so you know|for the record|fyi)"
    r"(?: (?:that|this))?[:,]?\s+",
    re.IGNORECASE,
)


def fact_to_remember(text: str) -> str | None:
    """The fact in "remember that my sister's birthday is on the third of May"."""
    match = _REMEMBER_LEADS.search(text.strip())
    if match is None:
        return None
    fact = text.strip()[match.end() :].strip().rstrip(".!")
    return fact or None


_RECALL_LEADS = re.compile(
    r"^(?:please |hey |ok |okay )*(?:do you remember|what did i (?:tell|say to) you about|what do you know about"
    r"|can you remember|remind me|tell me)\s+",
    re.IGNORECASE,
)


def recall_query(text: str) -> str:
    """What to look up in memory: the question, minus "do you remember"."""
    stripped = _RECALL_LEADS.sub("", text.strip()).strip().rstrip("?.!")
    return stripped or text.strip()


_SEARCH_LEADS = re.compile(
    r"^(?:please |hey |ok |okay |can you |could you )*(?:search|look up|find|check)"
    r"(?: (?:in )?(?:my|the) (?:notes|documents|docs|files|knowledge base))?(?: for| about)?\s+",
    re.IGNORECASE,
)


def search_query(text: str) -> str:
    """What to search the user's documents for."""
    stripped = _SEARCH_LEADS.sub("", text.strip()).strip().rstrip("?.!")
    stripped = re.sub(r"\s+in (?:my|the) (?:notes|documents|docs|files)$", "", stripped, flags=re.IGNORECASE)
    return stripped or text.strip()


@lru_cache(maxsize=1)
def _zones_by_place() -> dict[str, str]:
    places: dict[str, str] = {}
    for zone in sorted(zoneinfo.available_timezones()):
        if "/" not in zone or zone.startswith(("Etc/", "SystemV/", "posix/", "right/")):
            continue
        place = zone.rsplit("/", 1)[1].replace("_", " ").lower()
        places.setdefault(place, zone)
    return places


_PLACE = re.compile(r"\b(?:in|at|for)\s+((?:[a-z]+\s*){1,3})$")


def named_place(text: str) -> str | None:
    """The place a time question names ("what time is it in New York" gives "new york")."""
    spoken = re.sub(r"[^a-z ]+", " ", text.lower()).strip()
    spoken = re.sub(r"\s+(?:right now|now|today|please)$", "", spoken)
    match = _PLACE.search(spoken)
    if match is None:
        return None
    place = match.group(1).strip()
    return None if place in {"the moment", "here", "this moment", "the morning", "the evening"} else place


def timezone_for(place: str) -> str | None:
    """The IANA zone whose city is ``place`` (None when unknown)."""
    zones = _zones_by_place()
    words = place.lower().split()
    for length in range(len(words), 0, -1):
        for start in range(len(words) - length + 1):
            zone = zones.get(" ".join(words[start : start + length]))
            if zone is not None:
                return zone
    return None

