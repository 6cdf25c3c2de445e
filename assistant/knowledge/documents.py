"""Reading documents into blocks of text that know where they came from.

A loader turns a file into ``Block`` s: paragraphs (or code blocks, list
items, table rows) each tagged with the heading path above it and the page it
is on. The chunker (``chunking.py``) packs blocks into passages; keeping the
structure here is what lets a passage say "manual.pdf, p. 4" or
"notes.md, Setup > Linux" and lets chunks end where the author's sections end.

Supported: plain text, Markdown, PDF (``pypdf``) and HTML (the standard
library's parser: no extra dependency, and it never fetches anything the page
links to). Anything else that decodes as UTF-8 is read as plain text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from assistant.errors import AssistantError

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mdown", ".mkd"})
HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
PDF_SUFFIXES = frozenset({".pdf"})
HEADING_SEPARATOR = " > "


class DocumentError(AssistantError):
    """A file that cannot be read as a document; the message says why and what would work."""


@dataclass(frozen=True, slots=True)
class Block:
    """A paragraph-sized piece of a document and where it sits.

    ``headings`` is the path of section titles above the block (outermost
    first); ``page`` is the 1-based page for paged formats.
    """

    text: str
    headings: tuple[str, ...] = ()
    page: int | None = None


@dataclass(frozen=True, slots=True)
class Document:
    """A parsed file: its kind ("markdown", "pdf", ...), a title and its blocks in reading order."""

    kind: str
    title: str
    blocks: list[Block] = field(default_factory=list)


def _normalise_space(text: str) -> str:
    return " ".join(text.split())


def decode_text(data: bytes, name: str) -> str:
    """UTF-8 (with or without a byte-order mark); anything else is refused rather than garbled."""
    if b"\x00" in data[:4096]:
        raise DocumentError(f"{name}: looks like a binary file; supported are text, Markdown, PDF and HTML")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{name}: not UTF-8 text (byte {exc.start}); convert it to UTF-8 first") from exc


def _paragraphs(lines: list[str]) -> Iterator[str]:
    """Runs of non-blank lines joined with spaces."""
    run: list[str] = []
    for line in lines:
        if line.strip():
            run.append(line.strip())
        elif run:
            yield " ".join(run)
            run = []
    if run:
        yield " ".join(run)


def parse_text(text: str, title: str) -> Document:
    """Plain text: blank lines separate paragraphs; there are no headings."""
    return Document("text", title, [Block(p) for p in _paragraphs(text.splitlines())])


_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def parse_markdown(text: str, title: str) -> Document:
    """Markdown by its block structure: ATX and setext headings, fenced code, paragraphs.

    Headings never become passage text of their own: they become the heading
    path of the blocks below them. A fenced code block stays one block, so a
    chunk never cuts through the middle of a snippet.
    """
    lines = text.splitlines()
    if lines and lines[0].strip() == "---":  # YAML front matter is metadata, not prose
        for end in range(1, len(lines)):
            if lines[end].strip() in ("---", "..."):
                lines = lines[end + 1 :]
                break
    blocks: list[Block] = []
    headings: list[tuple[int, str]] = []
    paragraph: list[str] = []
    document_title = ""

    def path() -> tuple[str, ...]:
        return tuple(name for _, name in headings)

    def flush() -> None:
        if paragraph:
            blocks.append(Block(" ".join(paragraph), path()))
            paragraph.clear()

    def open_heading(level: int, name: str) -> None:
        nonlocal document_title
        flush()
        while headings and headings[-1][0] >= level:
            headings.pop()
        headings.append((level, name))
        if level == 1 and not document_title:
            document_title = name

    index = 0
    while index < len(lines):
        line = lines[index]
        fence = _FENCE.match(line)
        if fence:
            flush()
            marker = fence.group(1)
            code: list[str] = []
            index += 1
            while index < len(lines) and not lines[index].lstrip().startswith(marker):
                code.append(lines[index])
                index += 1
            if any(c.strip() for c in code):
                blocks.append(Block("\n".join(code).strip("\n"), path()))
            index += 1
            continue
        heading = _ATX_HEADING.match(line)
        if heading:
            open_heading(len(heading.group(1)), _normalise_space(heading.group(2)))
        elif paragraph and len(paragraph) == 1 and _SETEXT_UNDERLINE.match(line):
            name = paragraph.pop()
            open_heading(1 if line.strip().startswith("=") else 2, _normalise_space(name))
        elif not line.strip():
            flush()
        elif re.match(r"^ {0,3}([-*+]|\d+[.)])[ \t]", line) and paragraph:
            flush()  # a list item starts a block of its own
            paragraph.append(line.strip())
        else:
            paragraph.append(line.strip())
        index += 1
    flush()
    return Document("markdown", document_title or title, blocks)


_HYPHENATED_BREAK = re.compile(r"(\w)-\n(\w)")


def parse_pdf(path: Path) -> Document:
    """A PDF's text layer, page by page; a scanned PDF without one is refused with that reason."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError(f"{path.name}: the PDF is password-protected; save an unprotected copy")
        blocks: list[Block] = []
        for number, page in enumerate(reader.pages, start=1):
            text = _HYPHENATED_BREAK.sub(r"\1\2", page.extract_text() or "")
            blocks.extend(Block(p, page=number) for p in _paragraphs(text.splitlines()))
        metadata_title = (reader.metadata.title if reader.metadata else None) or ""
    except PdfReadError as exc:
        raise DocumentError(f"{path.name}: not a readable PDF ({exc})") from exc
    if not blocks:
        raise DocumentError(f"{path.name}: the PDF has no text layer (a scan?); run OCR on it first")
    return Document("pdf", _normalise_space(metadata_title) or path.stem, blocks)


class _HtmlText(HTMLParser):
    """Collects visible text into blocks, ending a block at every block-level element."""

    BLOCK_TAGS = frozenset(
        "address article aside blockquote br dd details div dl dt figcaption figure footer form "
        "header hr li main nav ol p pre section summary table td th tr ul".split()
    )
    HEADING_TAGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
    HIDDEN_TAGS = frozenset({"script", "style", "noscript", "template", "svg", "head", "iframe", "object"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.title = ""
        self._text: list[str] = []
        self._hidden_depth = 0
        self._in_title = False
        self._heading_level: int | None = None
        self._headings: list[tuple[int, str]] = []
        self._preformatted = 0

    def _flush(self) -> None:
        if self._heading_level is not None:  # a <br> inside a heading does not end it
            return
        text = "".join(self._text)
        self._text = []
        text = text.strip("\n") if self._preformatted else _normalise_space(text)
        if text.strip():
            self.blocks.append(Block(text, tuple(name for _, name in self._headings)))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in self.HIDDEN_TAGS:
            self._hidden_depth += 1
        elif tag in self.HEADING_TAGS:
            self._flush()
            self._heading_level = int(tag[1])
        elif tag in self.BLOCK_TAGS:
            self._flush()
            if tag == "pre":
                self._preformatted += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in self.HIDDEN_TAGS:
            self._hidden_depth = max(0, self._hidden_depth - 1)
        elif tag in self.HEADING_TAGS and self._heading_level is not None:
            level, name = self._heading_level, _normalise_space("".join(self._text))
            self._text = []
            self._heading_level = None
            if name:
                while self._headings and self._headings[-1][0] >= level:
                    self._headings.pop()
                self._headings.append((level, name))
                if level == 1 and not self.title:
                    self.title = name
        elif tag in self.BLOCK_TAGS:
            self._flush()
            if tag == "pre":
                self._preformatted = max(0, self._preformatted - 1)

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title = self.title or _normalise_space(data)
        elif not self._hidden_depth:
            self._text.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


_META_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_-]+)""", re.IGNORECASE)


def parse_html(data: bytes, title: str) -> Document:
    """HTML's visible text by block element, with h1-h6 as the heading path; scripts and styles are skipped."""
    declared = _META_CHARSET.search(data[:4096])
    encoding = declared.group(1).decode("ascii") if declared else "utf-8"
    try:
        text = data.decode(encoding)
    except (LookupError, UnicodeDecodeError):
        text = decode_text(data, title)
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    return Document("html", parser.title or title, parser.blocks)


def load_document(path: Path) -> Document:
    """Read and parse ``path`` by its suffix; raises ``DocumentError`` with a reason a user can act on."""
    if not path.is_file():
        raise DocumentError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in PDF_SUFFIXES:
        return parse_pdf(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read ({exc.strerror})") from exc
    if suffix in HTML_SUFFIXES:
        return parse_html(data, path.stem)
    text = decode_text(data, path.name)
    if suffix in MARKDOWN_SUFFIXES:
        return parse_markdown(text, path.stem)
    return parse_text(text, path.stem)
