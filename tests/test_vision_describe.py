"""The describer composes, caches and degrades gracefully; the VLM runs, or says why it cannot.

Cheap analysers (colours, and small counting or failing ones defined here)
exercise the describer's rules; one slow test runs the full default set on a
frame with a sentence, a face and a red object.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from assistant.bench.vision_costs import render_text_frame
from assistant.protocol import VideoFrame
from tests.support.checkpoints import VLM_WORDS, random_llava
from tests.test_vision_sampler import desk
from vision.analysers.base import Analyser, AnalyserUnavailable, Finding
from vision.analysers.colours import ColourAnalyser
from vision.analysers.faces import FaceFinding
from vision.analysers.ocr import TextFinding, TextLine
from vision.analysers.vlm import CaptionFinding, TransformersVlm
from vision.describe import ViewDescriber, VisionUnavailable, compose
from vision.frames import ImageDecodeError, encode_jpeg


class CountingColours(ColourAnalyser):
    """The real colour analyser, counting how often it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def _analyse(self, image: np.ndarray) -> Finding:
        self.calls += 1
        return super()._analyse(image)


class Missing(Analyser):
    name = "text"

    def _load(self) -> None:
        raise AnalyserUnavailable("the text model is not installed here")

    def _analyse(self, image: np.ndarray) -> Finding:
        raise AssertionError("never reached")


class Broken(Analyser):
    name = "faces"

    def _load(self) -> None:
        pass

    def _analyse(self, image: np.ndarray) -> Finding:
        raise RuntimeError("detector exploded")


def red_ball(seed: int = 0) -> np.ndarray:
    frame = np.full((720, 1280, 3), (200, 215, 225), np.uint8)
    cv2.circle(frame, (640, 360), 170, (40, 40, 200), -1)
    noise = np.random.default_rng(seed).integers(-4, 5, frame.shape, dtype=np.int16)
    return np.clip(frame + noise, 0, 255).astype(np.uint8)


def test_phrases_come_in_a_fixed_order() -> None:
    findings: dict[str, Finding] = {
        "faces": FaceFinding([(0, 0, 10, 10)]),
        "colours": ColourAnalyser().analyse(np.full((10, 10, 3), (20, 20, 230), np.uint8)),
        "text": TextFinding([TextLine("OPEN 9 TO 5", 0.99, (0, 0, 10, 10))]),
        "caption": CaptionFinding("A shop door with a sign"),
    }
    assert compose(findings) == "A shop door with a sign. Text: 'OPEN 9 TO 5'. One face. Mostly red, bright."


def test_same_frame_and_same_view_are_described_once() -> None:
    colours = CountingColours()
    describer = ViewDescriber([colours])
    first = describer.describe(encode_jpeg(red_ball(0)))
    assert not first.reused and "red in the centre" in first.text
    again = describer.describe(encode_jpeg(red_ball(0)))  # identical bytes
    noisy = describer.describe(VideoFrame(encode_jpeg(red_ball(1), 70)))  # same view, other noise and quality
    assert again.reused and noisy.reused and again.text == noisy.text == first.text
    assert colours.calls == 1
    blue = red_ball(2)
    cv2.circle(blue, (640, 360), 170, (200, 60, 30), -1)
    changed = describer.describe(blue)
    assert not changed.reused and "blue in the centre" in changed.text and colours.calls == 2


def test_a_word_or_digit_replaced_in_place_is_described_again() -> None:
    colours = CountingColours()
    describer = ViewDescriber([colours])
    describer.describe(desk(0, words="OPEN", size=(1280, 720)))
    assert describer.describe(desk(1, words="OPEN", size=(1280, 720))).reused
    assert not describer.describe(desk(2, words="SHUT", size=(1280, 720))).reused
    for seed, table in enumerate(("Table 0 is reserved", "Table 1 is reserved", "Table 1 is reserved")):
        sign = describer.describe(encode_jpeg(render_text_frame(table, size=(1024, 576), seed=seed)))
        assert sign.reused == (seed == 2), table
    assert colours.calls == 4


async def test_concurrent_questions_about_one_frame_share_one_analysis() -> None:
    colours = CountingColours()
    describer = ViewDescriber([colours])
    frame = VideoFrame(encode_jpeg(red_ball()))
    results = await asyncio.gather(*(describer.describe_async(frame) for _ in range(5)))
    assert len({result.text for result in results}) == 1
    assert colours.calls == 1


def test_unavailable_and_failing_analysers_do_not_stop_the_others() -> None:
    description = ViewDescriber([Missing(), Broken(), ColourAnalyser()]).describe(red_ball())
    assert description.text.startswith("Mostly white")
    assert description.unavailable == {"text": "the text model is not installed here"}
    assert description.failed == {"faces": "RuntimeError: detector exploded"}


def test_nothing_available_is_a_clear_error() -> None:
    with pytest.raises(VisionUnavailable, match="text: the text model is not installed here"):
        ViewDescriber([Missing()]).describe(red_ball())


def test_bad_bytes_are_a_decode_error() -> None:
    with pytest.raises(ImageDecodeError):
        ViewDescriber([ColourAnalyser()]).describe(VideoFrame(b"\x89PNG not really", "image/png"))


def test_preload_reports_what_is_missing() -> None:
    assert ViewDescriber([Missing(), ColourAnalyser()]).preload() == {"text": "the text model is not installed here"}


@pytest.mark.slow
def test_the_default_analysers_describe_a_real_looking_view() -> None:
    frame = render_text_frame("Closing time is nine tonight", size=(1280, 720), tilt_degrees=0.0)
    face = cv2.imread(str(importlib.resources.files("skimage") / "data" / "astronaut.png"))
    frame[470:700, 60:290] = cv2.resize(face[30:230, 130:330], (230, 230))  # her head and shoulders
    cv2.circle(frame, (1050, 590), 100, (30, 30, 210), -1)
    description = ViewDescriber().describe(encode_jpeg(frame))
    assert description.unavailable == {} and description.failed == {}
    assert "Text: 'Closing time is nine tonight'." in description.text
    assert "One face." in description.text
    assert description.text.index("Text:") < description.text.index("One face.") < description.text.index("Mostly")


# -- the vision-language model, where it cannot run -----------------------------


def test_vlm_missing_model_directory() -> None:
    with pytest.raises(AnalyserUnavailable, match=r"no model at /nonexistent/vlm \(a transformers model"):
        TransformersVlm("/nonexistent/vlm").load()


def test_vlm_without_torch_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "torch", None)  # as if not installed, whatever this machine has
    with pytest.raises(
        AnalyserUnavailable, match=r"needs torch and transformers .*pip install 'live-assistant\[vlm\]'"
    ):
        TransformersVlm(str(tmp_path)).load()


@pytest.fixture
def torch_without_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand-ins for torch (no CUDA) and transformers: the checks after the imports, without PyTorch."""
    torch = types.ModuleType("torch")
    torch.cuda = types.SimpleNamespace(is_available=lambda: False)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "transformers", types.ModuleType("transformers"))


@pytest.mark.usefixtures("torch_without_gpu")
def test_vlm_not_in_the_cache_is_not_downloaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(AnalyserUnavailable, match=r"not in the Hugging Face cache .*huggingface-cli download"):
        TransformersVlm("Qwen/Qwen2.5-VL-3B-Instruct").load()


@pytest.mark.usefixtures("torch_without_gpu")
def test_vlm_without_a_gpu_says_so_and_the_view_is_still_described(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    vlm = TransformersVlm(str(tmp_path))
    with pytest.raises(AnalyserUnavailable, match="no CUDA GPU"):
        vlm.load()
    description = ViewDescriber([vlm, ColourAnalyser()]).describe(red_ball())
    assert "no CUDA GPU" in description.unavailable["caption"]
    assert description.text.startswith("Mostly white")


# -- the vision-language model, where it runs --------------------------------

@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random LLaVA with its processor, made at test time (no VLM's weights can be fetched offline)."""
    return random_llava(tmp_path_factory.mktemp("vlm"))


def test_vlm_answers_about_a_frame_and_leads_the_description(tiny_vlm: Path, model_device: str) -> None:
    vlm = TransformersVlm(str(tiny_vlm), device=model_device, max_new_tokens=6)
    answer = vlm.ask(red_ball(), "what is this")
    words = answer.split()
    assert 0 < len(words) <= 6 and set(words) <= set(VLM_WORDS) - {"<pad>", "<s>", "</s>", "<image>"}
    assert vlm.ask(red_ball(), "what is this") == answer  # greedy: the same frame gives the same answer
    description = ViewDescriber([vlm, ColourAnalyser()]).describe(red_ball())
    caption = CaptionFinding(vlm.ask(red_ball(), vlm.prompt)).phrase()  # what the describer asks for
    assert caption and description.text.startswith(caption)
    assert "red in the centre" in description.text[len(caption) :] and not description.unavailable
