"""The hybrid's parts on small synthetic data with known answers: the content map, cold items,
the fusion and its dot-product form, the registry round trip and the quality gate."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from jobs.context import RunContext
from jobs.tasks.train import load, save
from pipelines.core import catalog as cat
from pipelines.core.settings import HybridSettings, ModelSettings
from pipelines.model.als import Factors, fit_als
from pipelines.model.hybrid import (
    FEATURES,
    AsOf,
    Fusion,
    Hybrid,
    _fit_logistic,
    build_base,
    fit_content_map,
    fit_hybrid,
    pair_features,
)
from pipelines.model.registry import model_version
from pipelines.serve.lists import top_n_lists
from tests.support.workspace import make_settings

CFG = HybridSettings(cold_min_users=2, ridge=0.01, candidates=10, heavy_user_events=5)
MODEL = ModelSettings(factors=4, iterations=10, regularization=0.1)


def trainer(data):
    return fit_als(data, MODEL)


def test_content_map_recovers_a_linear_map() -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(300, 8)).astype(np.float32)
    true = rng.normal(size=(8, 3)).astype(np.float32)
    fitted = fit_content_map(emb, emb @ true, ridge=1e-6)
    np.testing.assert_allclose(fitted, true, atol=1e-3)
    # A large penalty shrinks the map towards zero.
    assert np.abs(fit_content_map(emb, emb @ true, ridge=1e6)).max() < 0.01


def _vectors(key: str, rows: dict[str, list[float]]) -> pl.DataFrame:
    return pl.DataFrame({key: list(rows)}).with_columns(pl.Series(
        "vector", np.array(list(rows.values()), dtype=np.float32),
        dtype=pl.Array(pl.Float32, len(next(iter(rows.values()))))))


def two_topics() -> AsOf:
    """Ten users who each like the four items of one topic (a or b); a3 and b3 are left out
    of a few lists. Items a_new and b_new have text but no interactions yet."""
    rows = []
    for u in range(10):
        topic = "a" if u < 5 else "b"
        for i in range(4):
            if i == 3 and u % 5 == 0:
                continue
            rows.append((f"u{u}", f"{topic}{i}", 1.0))
    interactions = pl.DataFrame(rows, schema={"user_id": pl.String, "item_id": pl.String,
                                              "confidence": pl.Float64}, orient="row")
    items = (interactions.group_by("item_id").agg(pl.len().alias("n_users"))
             .with_columns(pl.col("n_users").cast(pl.Float64).alias("popularity"),
                           pl.lit(1.0).alias("trend")))
    rng = np.random.default_rng(1)
    vec = {}
    for item in [f"{t}{i}" for t in "ab" for i in range(4)] + ["a_new", "b_new"]:
        centre = [1.0, 0.0] if item.startswith("a") else [0.0, 1.0]
        vec[item] = list(np.array(centre) + rng.normal(scale=0.05, size=2))
    users = interactions.group_by("user_id").agg(pl.len().alias("n_events"))
    interest = _vectors("user_id", {f"u{u}": [1.0, 0.0] if u < 5 else [0.0, 1.0]
                                    for u in range(10)})
    return AsOf(interactions=interactions, items=items, users=users,
                item_vectors=_vectors("item_id", vec), interest=interest)


def test_cold_items_get_factors_from_their_text_and_get_recommended() -> None:
    asof = two_topics()
    base = build_base(asof, CFG, trainer)
    cold = dict(zip(base.item_ids.to_list(), base.cold.tolist(), strict=True))
    assert cold["a_new"] and cold["b_new"] and not cold["a0"]
    assert base.n_warm_fit == 8
    seen = asof.interactions.select("user_id", "item_id")
    lists = top_n_lists(Factors(user=base.user_factors, item=base.item_factors), base.user_ids,
                      base.item_ids, pl.Series(["u1", "u6"]), 3, seen)
    tops = {u: g["item_id"].to_list() for (u,), g in lists.group_by("user_id")}
    # An "a" user gets the new "a" item and never the new "b" item, and vice versa.
    assert "a_new" in tops["u1"] and "b_new" not in tops["u1"]
    assert "b_new" in tops["u6"] and "a_new" not in tops["u6"]
    # Plain ALS cannot list them at all.
    plain = top_n_lists(base.als, base.user_ids, base.als_item_ids, pl.Series(["u1"]), 3, seen)
    assert not plain["item_id"].is_in(["a_new", "b_new"]).any()


def test_logistic_regression_finds_the_informative_feature() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2000, 3))
    y = (x[:, 1] + 0.3 * rng.normal(size=2000) > 0.5).astype(float)
    w = _fit_logistic(x, y, l2=1e-3)
    assert w[1] > 2 and abs(w[0]) < 0.3 and abs(w[2]) < 0.3


def test_augmented_dot_product_is_the_fused_logit() -> None:
    asof = two_topics()
    base = build_base(asof, CFG, trainer)
    rng = np.random.default_rng(3)
    fusion = Fusion(means=rng.normal(size=len(FEATURES)),
                    stds=rng.uniform(0.5, 2, size=len(FEATURES)),
                    weights={s: rng.normal(size=len(FEATURES) + 1) for s in ("light", "heavy")})
    interest = rng.normal(size=(base.user_ids.len(), 2)).astype(np.float32)
    heavy = np.arange(base.user_ids.len()) % 2 == 0
    aug = Hybrid(base=base, fusion=fusion, interest=interest, heavy=heavy).augmented()
    users = np.repeat(np.arange(base.user_ids.len()), base.item_ids.len())
    items = np.tile(np.arange(base.item_ids.len()), base.user_ids.len())
    x = (pair_features(base, interest, users, items) - fusion.means) / fusion.stds
    w = np.where(heavy[users][:, None], fusion.weights["heavy"], fusion.weights["light"])
    expected = (x * w[:, :-1]).sum(axis=1) + w[:, -1]
    got = np.einsum("ij,ij->i", aug.user[users], aug.item[items])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_fusion_is_fitted_on_the_validation_split_or_falls_back_to_als() -> None:
    asof = two_topics()
    assert fit_hybrid(asof, None, CFG, trainer).fusion.note.startswith("no validation split")
    # Every "a" user takes a_new and every "b" user b_new in the validation days.
    truth = pl.DataFrame({"user_id": [f"u{u}" for u in range(10)],
                          "item_id": ["a_new"] * 5 + ["b_new"] * 5})
    hybrid = fit_hybrid(asof, (asof, truth), CFG, trainer)
    assert hybrid.fusion.note == "" and sum(hybrid.fusion.positives.values()) == 10
    weights = dict(zip(FEATURES, hybrid.fusion.weights["light"][:-1], strict=True))
    assert weights["cold"] > 0 and weights["cosine"] > 0  # new items of the user's topic win
    few = fit_hybrid(asof, (asof, truth.head(2)), CFG, trainer)
    assert few.fusion.note.startswith("2 validation positives")


def test_registry_round_trip_and_versions(tmp_path: Path) -> None:
    asof = two_topics()
    hybrid = fit_hybrid(asof, None, CFG, trainer)
    ctx = RunContext(make_settings(tmp_path), date(2026, 1, 2), "t")
    lineage, config = {"ds": "2026-01-02", "frames": {"x": "abc"}}, {"model": {"factors": 4}}
    version = model_version("20260102", lineage, config)
    assert version == model_version("20260102", lineage, config)
    assert version != model_version("20260102", lineage, {"model": {"factors": 8}})
    save(ctx, version, hybrid, config, lineage)
    loaded = load(ctx, version)
    a, b = hybrid.augmented(), loaded.augmented()
    np.testing.assert_array_equal(a.user, b.user)
    np.testing.assert_array_equal(a.item, b.item)
    assert loaded.base.item_ids.equals(hybrid.base.item_ids)
    assert ctx.lake.read(cat.MODEL_LINEAGE, version=version) == lineage
