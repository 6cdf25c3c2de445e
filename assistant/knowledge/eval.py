"""Measure how well the Thirukkural collection answers life questions.

``python -m assistant.knowledge.eval`` (or ``assistant knowledge eval``)
asks every question in ``thirukkural_questions.toml`` and reports, per split,
how often a couplet from a chapter a reader would expect is the first hit
(top-1) or among the first three (top-3). The questions were written for this
purpose; "held-out" ones exist only to report on, never to tune with.
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from assistant.knowledge.store import KnowledgeStore
from assistant.knowledge.thirukkural import COLLECTION, Kural, ThirukkuralCorpus

QUESTIONS_FILE = "thirukkural_questions.toml"
SPLITS = ("dev", "held-out")


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    chapters: frozenset[int]
    split: str


@dataclass(frozen=True, slots=True)
class Outcome:
    question: Question
    found_chapters: tuple[int, ...]  # chapters of the ranked couplets, best first

    def hit_within(self, k: int) -> bool:
        return any(chapter in self.question.chapters for chapter in self.found_chapters[:k])


@dataclass(slots=True)
class Score:
    split: str
    outcomes: list[Outcome] = field(default_factory=list)

    def accuracy(self, k: int) -> float:
        return sum(o.hit_within(k) for o in self.outcomes) / len(self.outcomes) if self.outcomes else 0.0

    def summary(self) -> str:
        n = len(self.outcomes)
        top1, top3 = (sum(o.hit_within(k) for o in self.outcomes) for k in (1, 3))
        return (
            f"{self.split:9s} {n:3d} questions   "
            f"top-1 {top1:2d}/{n} = {top1 / n:4.0%}   top-3 {top3:2d}/{n} = {top3 / n:4.0%}"
        )


def load_questions(path: Path | None = None) -> list[Question]:
    """The shipped question set (or ``path``), validated."""
    text = path.read_text() if path else resources.files("assistant.knowledge").joinpath(QUESTIONS_FILE).read_text()
    questions = []
    for entry in tomllib.loads(text)["question"]:
        if entry["split"] not in SPLITS or not entry["chapters"]:
            raise ValueError(f"bad question entry: {entry}")
        questions.append(Question(entry["text"], frozenset(entry["chapters"]), entry["split"]))
    return questions


def evaluate(store: KnowledgeStore, questions: Sequence[Question], collection: str = COLLECTION) -> dict[str, Score]:
    """Scores per split, plus "all"; ``collection`` must hold the Thirukkural corpus."""
    scores = {name: Score(name) for name in (*SPLITS, "all")}
    for question in questions:
        hits = store.search(question.text, collection, limit=3)
        outcome = Outcome(question, tuple(Kural.from_metadata(hit.metadata).chapter_number for hit in hits))
        scores[question.split].outcomes.append(outcome)
        scores["all"].outcomes.append(outcome)
    return scores


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assistant.knowledge.eval", description=__doc__)
    parser.add_argument("--store", type=Path, help="embedded store folder (default: the user's knowledge store)")
    parser.add_argument("--qdrant-url", help="use a Qdrant server instead of the embedded store")
    parser.add_argument("--qdrant-api-key", help="API key of that server")
    parser.add_argument("--questions", type=Path, help="a question file in the shipped format")
    parser.add_argument("--misses", action="store_true", help="list the questions missed at top-3")
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Index the corpus if needed, then print the figures (shared with ``assistant knowledge eval``)."""
    questions = load_questions(args.questions)
    with KnowledgeStore.open(args.store, url=args.qdrant_url, api_key=args.qdrant_api_key) as store:
        started = time.perf_counter()
        result = store.add_corpus(ThirukkuralCorpus(), COLLECTION)
        if result.status != "unchanged":
            print(f"indexed {result.passages} couplets in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        started = time.perf_counter()
        scores = evaluate(store, questions)
        elapsed = time.perf_counter() - started
    for name in (*SPLITS, "all"):
        print(scores[name].summary())
    print(f"{elapsed / len(questions) * 1000:.0f} ms per question (embedding and search)")
    if args.misses:
        for outcome in scores["all"].outcomes:
            if not outcome.hit_within(3):
                expected = sorted(outcome.question.chapters)
                print(f"  missed: {outcome.question.text!r} expected {expected}, got {list(outcome.found_chapters)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
