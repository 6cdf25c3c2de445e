"""Reading documents into structured blocks, and packing blocks into passages."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from fpdf import FPDF
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.knowledge.chunking import ChunkingOptions, chunk_blocks
from assistant.knowledge.documents import Block, DocumentError, load_document, parse_html, parse_markdown

MARKDOWN = """---
title: ignored front matter
---
# Garden notes

Tomatoes need six hours of sun.

## Watering

Water early in the morning,
before the heat.

- one can per plant
- more in July

```python
# not a heading
water(plants)
```

Setext section
--------------

Compost in autumn.
"""


def test_markdown_keeps_headings_as_paths_and_code_whole() -> None:
    document = parse_markdown(MARKDOWN, "fallback")
    assert document.title == "Garden notes"
    assert [(b.text, b.headings) for b in document.blocks] == [
        ("Tomatoes need six hours of sun.", ("Garden notes",)),
        ("Water early in the morning, before the heat.", ("Garden notes", "Watering")),
        ("- one can per plant", ("Garden notes", "Watering")),
        ("- more in July", ("Garden notes", "Watering")),
        ("# not a heading\nwater(plants)", ("Garden notes", "Watering")),
        ("Compost in autumn.", ("Garden notes", "Setext section")),
    ]


def test_html_reads_visible_text_by_block_with_heading_path() -> None:
    page = b"""<!doctype html><html><head><meta charset="utf-8"><title>Caf&eacute; guide</title>
    <style>p { color: red }</style><script>var hidden = "secret";</script></head>
    <body><nav><a href="/">Home</a></nav>
    <h1>Opening <em>hours</em></h1><p>Open <b>nine</b> to five.</p>
    <h2>Weekends</h2><p>Closed on Sunday.<br>Saturday until noon.</p>
    <pre>  keep   spacing</pre><ul><li>Tea &amp; cake</li></ul></body></html>"""
    document = parse_html(page, "fallback")
    assert document.title == "Café guide"
    texts = [(b.text, b.headings) for b in document.blocks]
    assert ("Open nine to five.", ("Opening hours",)) in texts
    assert ("Closed on Sunday.", ("Opening hours", "Weekends")) in texts
    assert ("Saturday until noon.", ("Opening hours", "Weekends")) in texts
    assert ("  keep   spacing", ("Opening hours", "Weekends")) in texts
    assert ("Tea & cake", ("Opening hours", "Weekends")) in texts
    assert not any("secret" in text or "color" in text for text, _ in texts)


def make_pdf(path: Path, pages: list[str], *, title: str = "", password: str | None = None) -> Path:
    """A real PDF with a text layer, one string per page, written by fpdf2."""
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    if title:
        pdf.set_title(title)
    if password:
        pdf.set_encryption(owner_password="owner", user_password=password)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    pdf.output(str(path))
    return path


def test_pdf_blocks_know_their_page(tmp_path: Path) -> None:
    path = make_pdf(
        tmp_path / "manual.pdf", ["The kettle boils in ninety seconds.", "Descale it every month."], title="Kettle"
    )
    document = load_document(path)
    assert document.kind == "pdf"
    assert document.title == "Kettle"
    assert [(b.text, b.page) for b in document.blocks] == [
        ("The kettle boils in ninety seconds.", 1),
        ("Descale it every month.", 2),
    ]


def test_pdf_without_text_or_with_a_password_is_refused_with_the_reason(tmp_path: Path) -> None:
    scan = FPDF()
    scan.add_page()
    scan.rect(10, 10, 50, 50)
    scan.output(str(tmp_path / "scan.pdf"))
    with pytest.raises(DocumentError, match="no text layer"):
        load_document(tmp_path / "scan.pdf")
    locked = make_pdf(tmp_path / "locked.pdf", ["secret"], password="pw")
    with pytest.raises(DocumentError, match="password"):
        load_document(locked)
    (tmp_path / "fake.pdf").write_bytes(b"not a pdf at all")
    with pytest.raises(DocumentError, match=r"fake\.pdf"):
        load_document(tmp_path / "fake.pdf")


def test_unreadable_files_say_why(tmp_path: Path) -> None:
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(DocumentError, match="not UTF-8"):
        load_document(tmp_path / "latin1.txt")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(DocumentError, match="binary"):
        load_document(tmp_path / "image.png")
    with pytest.raises(DocumentError, match="no such file"):
        load_document(tmp_path / "missing.md")


def test_plain_text_splits_on_blank_lines(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("\ufeffFirst line\nsame paragraph.\n\n\nSecond paragraph.\n")
    document = load_document(tmp_path / "notes.txt")
    assert [b.text for b in document.blocks] == ["First line same paragraph.", "Second paragraph."]


def _sentence(i: int) -> str:
    return f"Sentence number {i} talks about topic {i} in eight words."


def test_chunks_pack_to_target_overlap_and_never_cross_sections() -> None:
    options = ChunkingOptions(target_words=40, max_words=60, overlap_words=12)
    long_paragraph = " ".join(_sentence(i) for i in range(20))  # 200 words: split at sentence ends
    blocks = [Block(long_paragraph, ("Intro",)), Block("Short other section.", ("Other",))]
    chunks = chunk_blocks(blocks, options)
    intro = [c for c in chunks if c.headings == ("Intro",)]
    assert chunks[-1].text == "Short other section." and chunks[-1].location == "Other"
    assert all(len(c.text.split()) <= options.max_words for c in chunks)
    assert len(intro) >= 4
    for before, after in itertools.pairwise(intro):
        # Consecutive passages share their boundary sentence: an answer there is found from either side.
        assert before.text.split(". ")[-1].removesuffix(".") == after.text.split(". ")[0]
        assert "\n\n" not in before.text  # sentences of one paragraph stay one paragraph
    covered = " ".join(c.text for c in intro)
    assert all(_sentence(i) in covered for i in range(20))


def test_chunk_locations_name_pages() -> None:
    blocks = [Block("one two three", page=3), Block("four five", page=4), Block("six", page=4)]
    (chunk,) = chunk_blocks(blocks)
    assert chunk.location == "pp. 3-4"
    (single,) = chunk_blocks([Block("alone", ("Setup", "Linux"), page=2)])
    assert single.location == "Setup > Linux, p. 2"


@settings(max_examples=60, deadline=None)
@given(
    paragraphs=st.lists(
        st.lists(st.text(alphabet="abcdefgh", min_size=1, max_size=8), min_size=1, max_size=120), max_size=12
    ),
    section_breaks=st.lists(st.booleans(), min_size=12, max_size=12),
)
def test_every_word_lands_in_a_passage_within_the_limit(
    paragraphs: list[list[str]], section_breaks: list[bool]
) -> None:
    options = ChunkingOptions(target_words=30, max_words=45, overlap_words=8)
    section = 0
    blocks = []
    for index, words in enumerate(paragraphs):
        section += section_breaks[index]
        blocks.append(Block(" ".join(words), (f"s{section}",)))
    chunks = chunk_blocks(blocks, options)
    assert all(len(c.text.split()) <= options.max_words for c in chunks)
    expected = [w for words in paragraphs for w in words]
    produced = [w for c in chunks for w in c.text.split()]
    # Overlap repeats words, never drops or reorders them: the input is a subsequence of the output.
    remaining = iter(produced)
    assert all(word in remaining for word in expected)
