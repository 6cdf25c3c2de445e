"""Reading text in the view: RapidOCR (default) or Debian's tesseract.

RapidOCR 3.x carries its PP-OCR detection, orientation and recognition
models as ONNX files inside the wheel and runs them with onnxruntime: it
reads signs, labels and screens held at an angle, in under a second on two
cores. Tesseract (Debian ``tesseract-ocr``) is the alternative for clean
documents and screenshots; it runs as a separate program, so nothing of it
is loaded into the server process.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import cv2
import numpy as np

from vision.analysers.base import Analyser, AnalyserUnavailable

MIN_CONFIDENCE = 0.65  # below it PP-OCR's reads of textures are mostly noise ("the o sr e t te")
MIN_ALPHANUMERICS = 2  # a lone glyph read off a coffee cup or a cat's fur is noise, not text
MAX_PHRASE_CHARS = 300


@dataclass(frozen=True, slots=True)
class TextLine:
    text: str
    confidence: float  # 0..1
    box: tuple[int, int, int, int]  # x, y, width, height


@dataclass(frozen=True, slots=True)
class TextFinding:
    lines: list[TextLine]  # in reading order

    @property
    def text(self) -> str:
        """All the text read, one line per line seen."""
        return "\n".join(line.text for line in self.lines)

    def phrase(self) -> str:
        if not self.lines:
            return ""
        joined = " / ".join(line.text for line in self.lines)
        if len(joined) > MAX_PHRASE_CHARS:
            joined = joined[: MAX_PHRASE_CHARS - 1].rstrip() + "…"
        return f"Text: '{joined}'."


def plausible(text: str) -> bool:
    """Whether a read is worth reporting: at least two letters or digits."""
    return sum(character.isalnum() for character in text) >= MIN_ALPHANUMERICS


def reading_order(lines: list[TextLine]) -> list[TextLine]:
    """Top to bottom, and left to right within a row (boxes whose centres share a band)."""
    lines = sorted(lines, key=lambda line: line.box[1] + line.box[3] / 2)
    rows: list[list[TextLine]] = []
    for line in lines:
        centre = line.box[1] + line.box[3] / 2
        if rows and abs(centre - (rows[-1][0].box[1] + rows[-1][0].box[3] / 2)) < rows[-1][0].box[3] / 2:
            rows[-1].append(line)
        else:
            rows.append([line])
    return [line for row in rows for line in sorted(row, key=lambda line: line.box[0])]


class RapidOcrReader(Analyser):
    """PP-OCR through rapidocr 3.x and onnxruntime, with the models the wheel carries."""

    name = "text"

    def __init__(self, *, min_confidence: float = MIN_CONFIDENCE, threads: int = 1) -> None:
        """``threads``: onnxruntime threads per call. One is the default because on a busy machine
        (audio, ASR and an LLM beside it) extra threads spin and made a 1 s read take 2-3 s; the
        describer runs the other analysers on the other core meanwhile."""
        super().__init__()
        self.min_confidence = min_confidence
        self.threads = threads
        self._engine: Any = None

    def _load(self) -> None:
        try:
            from rapidocr import RapidOCR
        except ModuleNotFoundError as error:
            raise AnalyserUnavailable(
                f"text reading needs rapidocr and onnxruntime ({error.name} is missing): "
                "pip install 'live-assistant[vision]'"
            ) from error
        try:
            self._engine = RapidOCR(
                params={
                    "Global.log_level": "error",  # it warns on every frame without text
                    "Global.text_score": self.min_confidence,
                    "EngineConfig.onnxruntime.intra_op_num_threads": self.threads,
                    "EngineConfig.onnxruntime.inter_op_num_threads": 1,
                }
            )
            # rapidocr loads its three models on first use: pay that (about 2 s) now, not in the
            # first question. A drawn word makes detection find a box, so recognition loads too.
            warm = np.full((64, 240, 3), 255, dtype=np.uint8)
            cv2.putText(warm, "ready", (10, 45), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 0), 2)
            self._engine(warm)
        except Exception as error:  # rapidocr reports a missing model file in several ways
            raise AnalyserUnavailable(f"rapidocr could not load its models: {error}") from error

    def _analyse(self, image: np.ndarray) -> TextFinding:
        result = self._engine(image)
        if not result.txts:
            return TextFinding([])
        lines = []
        for text, score, corners in zip(result.txts, result.scores, result.boxes, strict=True):
            x, y, width, height = cv2.boundingRect(np.asarray(corners, dtype=np.float32))
            if plausible(text) and score >= self.min_confidence:
                lines.append(TextLine(text.strip(), float(score), (x, y, width, height)))
        return TextFinding(reading_order(lines))


class TesseractReader(Analyser):
    """Debian's ``tesseract`` program (``tesseract-ocr`` and ``tesseract-ocr-eng``), one process per frame."""

    name = "text"

    def __init__(
        self, *, language: str = "eng", min_confidence: float = MIN_CONFIDENCE, timeout_s: float = 20.0
    ) -> None:
        super().__init__()
        self.language = language
        self.min_confidence = min_confidence
        self.timeout_s = timeout_s
        self._program: str | None = None

    def _load(self) -> None:
        program = shutil.which("tesseract")
        if program is None:
            raise AnalyserUnavailable(
                "the tesseract program is missing: apt-get install tesseract-ocr tesseract-ocr-eng"
            )
        languages = subprocess.run([program, "--list-langs"], capture_output=True, text=True, timeout=self.timeout_s)
        if self.language not in languages.stdout.split():
            raise AnalyserUnavailable(
                f"tesseract has no '{self.language}' language data: apt-get install tesseract-ocr-{self.language}"
            )
        self._program = program

    def _analyse(self, image: np.ndarray) -> TextFinding:
        assert self._program is not None
        ok, png = cv2.imencode(".png", image)
        if not ok:
            raise ValueError(f"cannot encode an image of shape {image.shape} for tesseract")
        done = subprocess.run(
            [self._program, "stdin", "stdout", "-l", self.language, "tsv"],
            input=png.tobytes(),
            capture_output=True,
            timeout=self.timeout_s,
            env={**os.environ, "OMP_THREAD_LIMIT": "1"},  # its OpenMP threads only contend on a busy machine
        )
        if done.returncode != 0:
            raise RuntimeError(f"tesseract failed: {done.stderr.decode(errors='replace').strip()}")
        return TextFinding(self._lines(done.stdout.decode()))

    def _lines(self, tsv: str) -> list[TextLine]:
        words = [
            row
            for row in csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE)
            if row.get("level") == "5" and row["text"].strip() and float(row["conf"]) >= 0
        ]
        lines = []
        for _, group in groupby(words, key=lambda row: (row["block_num"], row["par_num"], row["line_num"])):
            members = list(group)
            text = " ".join(row["text"].strip() for row in members)
            confidence = sum(float(row["conf"]) for row in members) / len(members) / 100.0
            if confidence < self.min_confidence or not plausible(text):
                continue
            left = min(int(row["left"]) for row in members)
            top = min(int(row["top"]) for row in members)
            right = max(int(row["left"]) + int(row["width"]) for row in members)
            bottom = max(int(row["top"]) + int(row["height"]) for row in members)
            lines.append(TextLine(text, confidence, (left, top, right - left, bottom - top)))
        return lines
