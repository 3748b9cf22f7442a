"""Fine-tuning on pairs whose answer is known: items that share nothing in their words, taken
together by the same users, end up nearer each other than before; one seed, one result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipelines.core.settings import EmbedSettings, FinetuneSettings
from pipelines.embed.encoder import Encoder, resolve_model_path
from pipelines.embed.finetune import finetune, plan_batches

# Two made-up product lines whose names share no word: the logs pair LEFT[i] with RIGHT[i].
LEFT = ["zorbex valve", "quillon gasket", "marbly flange", "tessik nozzle", "vorpal hinge",
        "glimmet bracket", "drossel coupling", "fennik spindle"]
RIGHT = ["amber kettle", "copper lantern", "velvet pouch", "granite mortar", "linen apron",
         "walnut tray", "cobalt jar", "silver ladle"]
CFG = FinetuneSettings(method="lora", max_steps=24, batch_size=8, learning_rate=1e-3,
                       max_length=16, seed=3)


def _pairs() -> pl.DataFrame:
    return pl.DataFrame({"kind": "co", "anchor": LEFT, "positive": RIGHT})


def _partner_margin(model: str) -> float:
    """Mean cosine of each item to its partner less its mean cosine to the other items."""
    encoder = Encoder.load(EmbedSettings(model=model, precision="fp32"), "cpu")
    sims = encoder.encode(LEFT) @ encoder.encode(RIGHT).T
    off = (sims.sum(axis=1) - np.diag(sims)) / (len(LEFT) - 1)
    return float((np.diag(sims) - off).mean())


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory):
    base = resolve_model_path(EmbedSettings().model)
    return base, finetune(base, _pairs(), CFG, "cpu", tmp_path_factory.mktemp("tuned"))


def test_known_pairs_end_up_nearer(tuned) -> None:
    base, result = tuned
    before, after = _partner_margin(str(base)), _partner_margin(str(result.folder))
    assert after > before + 0.1, (before, after)
    assert result.loss_last < result.loss_first
    assert (result.steps, result.batch, result.pairs) == (24, 8, 8)


def test_one_seed_gives_the_same_weights(tuned, tmp_path: Path) -> None:
    base, result = tuned
    again = finetune(base, _pairs(), CFG, "cpu", tmp_path / "again")
    assert again.weights_sha256 == result.weights_sha256
    other = finetune(base, _pairs(), CFG.model_copy(update={"seed": 4}), "cpu", tmp_path / "b")
    assert other.weights_sha256 != result.weights_sha256


def test_the_tuned_encoder_loads_as_a_plain_one(tuned) -> None:
    base, result = tuned
    frozen = Encoder.load(EmbedSettings(model=str(base)), "cpu")
    loaded = Encoder.load(EmbedSettings(model=str(result.folder)), "cpu")
    assert loaded.dim == frozen.dim
    assert loaded.identity != frozen.identity  # new weights, a new cache key


def test_batches_hold_each_pair_once_an_epoch() -> None:
    batches = plan_batches(100, FinetuneSettings(batch_size=32, max_steps=7, seed=1))
    assert [len(b) for b in batches] == [32] * 7
    for epoch in (batches[0:3], batches[3:6]):  # 3 full batches an epoch, 4 left out
        flat = np.concatenate(epoch)
        assert len(set(flat.tolist())) == 96
    assert plan_batches(100, FinetuneSettings(batch_size=32, max_steps=7, seed=1))[6].tolist() \
        == batches[6].tolist()
    assert [len(b) for b in plan_batches(5, FinetuneSettings(batch_size=32, max_steps=2))] \
        == [5, 5]
