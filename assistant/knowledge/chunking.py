"""Packing document blocks into passages sized for the sentence-embedding model.

all-MiniLM-L6-v2 reads at most 256 word pieces and was trained on short
texts; a passage of one to two hundred words keeps one idea per vector while
carrying enough context to answer from. The rules:

- a passage never spans two sections (a heading change starts a new one), so
  its location is exact and its topic is single;
- blocks are packed whole up to ``target_words``; a block longer than
  ``max_words`` is split at sentence ends (and a run-on sentence at words);
- consecutive passages of one section share ``overlap_words`` of whole
  sentences, so an answer that straddles a boundary is found from either side;
- pages are not sections: a passage may run from one page onto the next and
  then says "pp. 3-4".
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from assistant.knowledge.documents import HEADING_SEPARATOR, Block

DEFAULT_TARGET_WORDS = 120
DEFAULT_MAX_WORDS = 180
DEFAULT_OVERLAP_WORDS = 30

_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


@dataclass(frozen=True, slots=True)
class ChunkingOptions:
    target_words: int = DEFAULT_TARGET_WORDS
    max_words: int = DEFAULT_MAX_WORDS
    overlap_words: int = DEFAULT_OVERLAP_WORDS

    def __post_init__(self) -> None:
        if not 0 <= self.overlap_words < self.target_words <= self.max_words:
            raise ValueError("chunking needs 0 <= overlap_words < target_words <= max_words")


@dataclass(frozen=True, slots=True)
class Chunk:
    """A passage of a document: its text, its heading path and the pages it covers."""

    text: str
    headings: tuple[str, ...]
    first_page: int | None
    last_page: int | None

    @property
    def location(self) -> str:
        """Where a reader finds it: "Setup > Linux", "p. 3", "pp. 3-4", both, or ""."""
        parts = []
        if self.headings:
            parts.append(HEADING_SEPARATOR.join(self.headings))
        if self.first_page is not None:
            if self.last_page is None or self.last_page == self.first_page:
                parts.append(f"p. {self.first_page}")
            else:
                parts.append(f"pp. {self.first_page}-{self.last_page}")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class _Unit:
    text: str
    words: int
    page: int | None
    block: int  # units of one block are sentences of one paragraph, joined back with a space


def _word_count(text: str) -> int:
    return len(text.split())


def _split_long(text: str, max_words: int) -> Iterator[str]:
    """Sentences of an over-long block, and word windows of an over-long sentence."""
    for sentence in _SENTENCE_END.split(text):
        words = sentence.split()
        if len(words) <= max_words:
            if words:
                yield sentence.strip()
            continue
        for start in range(0, len(words), max_words):
            yield " ".join(words[start : start + max_words])


def _units(block: Block, index: int, options: ChunkingOptions) -> Iterator[_Unit]:
    if _word_count(block.text) <= options.max_words:
        yield _Unit(block.text, _word_count(block.text), block.page, index)
        return
    # Sentences of a long paragraph are packed back together by chunk_blocks, up to the target.
    for sentence in _split_long(block.text, options.max_words):
        yield _Unit(sentence, _word_count(sentence), block.page, index)


def _sections(blocks: Iterable[Block]) -> Iterator[tuple[tuple[str, ...], list[Block]]]:
    current: list[Block] = []
    headings: tuple[str, ...] | None = None
    for block in blocks:
        if headings is not None and block.headings != headings and current:
            yield headings, current
            current = []
        headings = block.headings
        current.append(block)
    if current and headings is not None:
        yield headings, current


def _chunk(units: list[_Unit], headings: tuple[str, ...]) -> Chunk:
    pages = [u.page for u in units if u.page is not None]
    text = units[0].text
    for previous, unit in itertools.pairwise(units):
        text += (" " if unit.block == previous.block else "\n\n") + unit.text
    return Chunk(
        text=text,
        headings=headings,
        first_page=min(pages) if pages else None,
        last_page=max(pages) if pages else None,
    )


def chunk_blocks(blocks: Iterable[Block], options: ChunkingOptions | None = None) -> list[Chunk]:
    """Passages of a document in reading order, following the rules in the module docstring."""
    options = options or ChunkingOptions()
    chunks: list[Chunk] = []
    for headings, section in _sections(blocks):
        units = [unit for index, block in enumerate(section) for unit in _units(block, index, options)]
        current: list[_Unit] = []
        fresh = 0  # units in ``current`` not carried over from the previous passage
        for unit in units:
            size = sum(u.words for u in current)
            if fresh and size + unit.words > options.target_words:
                chunks.append(_chunk(current, headings))
                carried: list[_Unit] = []
                for previous in reversed(current):
                    if sum(u.words for u in carried) + previous.words > options.overlap_words:
                        break
                    carried.insert(0, previous)
                # Never carry so much that the next passage overflows its limit.
                while carried and sum(u.words for u in carried) + unit.words > options.max_words:
                    carried.pop(0)
                current, fresh = carried, 0
            current.append(unit)
            fresh += 1
        if fresh:
            chunks.append(_chunk(current, headings))
    return chunks
