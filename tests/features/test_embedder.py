"""The built-in text embedder with the real model, loaded offline from installed packages."""

from __future__ import annotations

import numpy as np

from siftline.features.embedder import DIMENSION, TextEmbedder, model_files


def test_model_files_ship_in_installed_packages() -> None:
    model, tokenizer = model_files()
    assert model.is_file() and model.stat().st_size > 10_000_000
    assert tokenizer.is_file()


def test_similar_sentences_are_closer_than_unrelated_ones(embedder: TextEmbedder) -> None:
    cat, kitten, stocks = embedder.embed(
        ["a cat sat on the mat", "a kitten rested on the rug", "stock markets fell sharply"]
    )
    assert float(cat @ kitten) > float(cat @ stocks) + 0.3


def test_vectors_are_384_d_unit_length_and_batch_independent(embedder: TextEmbedder) -> None:
    texts = ["short", "a considerably longer sentence about vitamin d and bone density in adults", ""]
    together = embedder.embed(texts)
    alone = np.stack([embedder.embed_one(t) for t in texts])
    assert together.shape == (3, DIMENSION) and together.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    # padding to the batch's longest text must not change a text's vector
    np.testing.assert_allclose(together, alone, atol=1e-4)


def test_long_text_is_truncated_not_rejected(embedder: TextEmbedder) -> None:
    long_text = "protein " * 5000
    vec = embedder.embed_one(long_text)
    assert vec.shape == (DIMENSION,) and np.isfinite(vec).all()


def test_empty_input_gives_empty_matrix() -> None:
    assert TextEmbedder().embed([]).shape == (0, DIMENSION)
