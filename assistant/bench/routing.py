"""``assistant bench routing``: how often the offline router sends a request where it belongs.

The router (``assistant.backends.local.router``) runs over the public
evaluation set (``routing_set``) with every built-in tool declared, the
deterministic cues the dialogue adds (an arithmetic expression backs
``calculate``), and the real all-MiniLM-L6-v2 embeddings. Reported: the
accuracy, a confusion table (expected intent by row, routed intent by
column) and every misrouted phrasing with its scores, so a regression shows
what moved where.

Small talk and general questions must stay out of the tools: small talk
is conversation (``chat``, what the router answers with no intent), and a
general question is ``facts`` (a capable chat model answers it; with the
small one the dialogue says honestly that it cannot look it up offline).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from assistant.backends.local.cues import cue_boosts
from assistant.backends.local.router import CHAT, INTENTS, ToolRouter
from assistant.bench.report import Machine, ModelInfo, describe_models, format_table, publish
from assistant.bench.routing_set import PHRASINGS

ALL_TOOLS = frozenset(intent.tool for intent in INTENTS if intent.tool)

@dataclass(frozen=True, slots=True)
class Routed:
    """One phrasing of the set and where the router sent it."""

    text: str
    expected: str
    got: str
    score: float
    chat_score: float

    @property
    def right(self) -> bool:
        return self.got == self.expected


@dataclass(slots=True)
class RoutingScore:
    """The outcome of a run over the set."""

    outcomes: list[Routed] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return sum(o.right for o in self.outcomes) / len(self.outcomes) if self.outcomes else 0.0

    def misrouted(self) -> list[Routed]:
        return [o for o in self.outcomes if not o.right]

    def confusion(self) -> dict[str, Counter[str]]:
        """Expected intent -> how often it went to each intent."""
        table: dict[str, Counter[str]] = {}
        for outcome in self.outcomes:
            table.setdefault(outcome.expected, Counter())[outcome.got] += 1
        return table

    def confusion_rows(self) -> tuple[list[str], list[list[object]]]:
        """The confusion table for ``format_table``: one row per expected intent, its accuracy last."""
        table = self.confusion()
        labels = sorted({*table, *(got for row in table.values() for got in row)})
        rows: list[list[object]] = []
        for expected in sorted(table):
            row = table[expected]
            total = sum(row.values())
            rows.append([expected, *(row.get(got) or None for got in labels), f"{row.get(expected, 0) / total:.0%}"])
        return ["expected \\ routed", *labels, "right"], rows


def evaluate(
    router: ToolRouter,
    phrasings: Sequence[tuple[str, str]] = PHRASINGS,
    declared: Collection[str] = ALL_TOOLS,
) -> RoutingScore:
    """Route every phrasing as the offline dialogue would, in a default session that declares ``declared``."""
    score = RoutingScore()
    for text, label in phrasings:
        route = router.route(text, declared, cue_boosts(text))
        got = route.intent.name if route.intent is not None else CHAT
        score.outcomes.append(Routed(text, label, got, route.score, route.chat_score))
    return score


def run(args: argparse.Namespace) -> int:
    try:
        from assistant.embeddings import (
            DEFAULT_EMBEDDING_MODEL,
            EmbeddingModelMissing,
            load_embedder,
            resolve_embedding_model,
        )

        embedder = load_embedder()
        source = resolve_embedding_model()
    except (ModuleNotFoundError, EmbeddingModelMissing) as exc:
        print(f"assistant bench routing: the router's model is missing: {exc}", file=sys.stderr)
        return 2
    machine = Machine.now()
    started = time.perf_counter()
    router = ToolRouter(embedder)
    phrasings = PHRASINGS[::4] if args.quick else PHRASINGS
    score = evaluate(router, phrasings)
    seconds = time.perf_counter() - started
    machine.finish()
    right = sum(o.right for o in score.outcomes)
    print("assistant bench routing   (the offline tool router on its public evaluation set, every tool declared)\n")
    print(f"accuracy {right}/{len(score.outcomes)} = {score.accuracy:.1%}   ({seconds:.1f} s with loading)\n")
    headers, rows = score.confusion_rows()
    print(format_table(headers, rows))
    misrouted = score.misrouted()
    if misrouted:
        print("\nmisrouted (expected -> routed, best score, small-talk score)")
        print(
            format_table(
                ["phrasing", "expected", "routed", "score", "chat"],
                [[o.text, o.expected, o.got, f"{o.score:.2f}", f"{o.chat_score:.2f}"] for o in misrouted],
            )
        )
    print(machine.describe())
    print(describe_models([ModelInfo.of("router", DEFAULT_EMBEDDING_MODEL, source)]))
    report = {
        "benchmark": "routing",
        "quick": args.quick,
        "machine": machine.to_json(),
        "phrasings": len(score.outcomes),
        "accuracy": score.accuracy,
        "confusion": {expected: dict(row) for expected, row in score.confusion().items()},
        "misrouted": [
            {"text": o.text, "expected": o.expected, "routed": o.got, "score": o.score, "chat_score": o.chat_score}
            for o in misrouted
        ],
    }
    publish(args, report)
    return 0
