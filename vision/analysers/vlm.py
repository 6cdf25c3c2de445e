"""A vision-language model through transformers, for machines with a GPU and weights on disk.

No package carries a vision-language model's weights, and on a CPU one takes
tens of seconds per view, so this analyser is opt-in: the ``vlm`` extra
(torch and transformers) plus a model from a local directory or the Hugging
Face cache (``huggingface-cli download Qwen/Qwen2.5-VL-3B-Instruct`` on a
machine with internet). Nothing is downloaded at run time. Whatever is
missing (the packages, the weights, a CUDA device) is reported as
``AnalyserUnavailable`` with the fix, checked in that order, so the
describer falls back to the CPU analysers and says why.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vision.analysers.base import Analyser, AnalyserUnavailable

DEFAULT_VLM = "Qwen/Qwen2.5-VL-3B-Instruct"
DEFAULT_PROMPT = (
    "Describe what the camera sees in one or two short sentences for someone who cannot see it. "
    "Quote any readable text exactly."
)
MAX_NEW_TOKENS = 96


@dataclass(frozen=True, slots=True)
class CaptionFinding:
    caption: str

    def phrase(self) -> str:
        caption = self.caption.strip()
        return caption if not caption or caption.endswith((".", "!", "?")) else caption + "."


def _looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or Path(model).expanduser().exists()


class TransformersVlm(Analyser):
    """Captions (or answers a question about) a frame with an image-text-to-text model."""

    name = "caption"

    def __init__(
        self,
        model: str = DEFAULT_VLM,
        *,
        device: str | None = None,
        prompt: str = DEFAULT_PROMPT,
        max_new_tokens: int = MAX_NEW_TOKENS,
    ) -> None:
        """``device`` None means CUDA when present, else unavailable; pass "cpu" to accept slow captions."""
        super().__init__()
        self.model_name = model
        self.device = device
        self.prompt = prompt
        self.max_new_tokens = max_new_tokens
        self._torch: Any = None
        self._processor: Any = None
        self._model: Any = None

    def _load(self) -> None:
        local = _looks_like_path(self.model_name)
        directory = Path(self.model_name).expanduser()
        if local and not (directory / "config.json").is_file():
            raise AnalyserUnavailable(f"no model at {directory} (a transformers model directory has a config.json)")
        try:
            torch = importlib.import_module("torch")
            transformers = importlib.import_module("transformers")
        except ImportError as error:
            raise AnalyserUnavailable(
                f"the vision-language model needs torch and transformers ({error.name or error} is missing): "
                "pip install 'live-assistant[vlm]'"
            ) from error
        if not local:
            directory = self._cached_snapshot()
        device = self.device or ("cuda" if torch.cuda.is_available() else None)
        if device is None:
            raise AnalyserUnavailable(
                "no CUDA GPU: a vision-language model on this CPU would take tens of seconds per view; "
                "pass device='cpu' to use it anyway"
            )
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        try:
            self._processor = transformers.AutoProcessor.from_pretrained(directory)
            model = transformers.AutoModelForImageTextToText.from_pretrained(directory, dtype=dtype)
        except (OSError, ValueError) as error:
            raise AnalyserUnavailable(f"{directory} is not a usable image-text-to-text model: {error}") from error
        self._model = model.to(device).eval()
        self._torch = torch
        self.device = device

    def _cached_snapshot(self) -> Path:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            return Path(snapshot_download(self.model_name, local_files_only=True))
        except LocalEntryNotFoundError as error:
            raise AnalyserUnavailable(
                f"{self.model_name} is not in the Hugging Face cache and nothing is downloaded at run time: "
                f"run `huggingface-cli download {self.model_name}` where there is internet, or pass a model directory"
            ) from error

    def ask(self, image: np.ndarray, question: str) -> str:
        """The model's answer to ``question`` about one BGR frame (blocking)."""
        with self._lock:
            self._load_locked()
            return self._generate(image, question)

    def _analyse(self, image: np.ndarray) -> CaptionFinding:
        return CaptionFinding(self._generate(image, self.prompt))

    def _generate(self, image: np.ndarray, question: str) -> str:
        from PIL import Image

        picture = Image.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        messages = [
            {"role": "user", "content": [{"type": "image", "image": picture}, {"type": "text", "text": question}]}
        ]
        inputs = self._processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
        ).to(self._model.device)
        with self._torch.inference_mode():
            output = self._model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        answer = output[:, inputs["input_ids"].shape[1] :]
        return str(self._processor.batch_decode(answer, skip_special_tokens=True)[0]).strip()
