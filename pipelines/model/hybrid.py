"""The ALS / language-model hybrid.

Three parts, each measurable on its own:

- **ALS** item and user factors from the confidence matrix;
- a **content map**: a ridge regression from item embeddings to ALS item factors, fitted on warm
  items, that gives cold items (new, or with fewer than ``cold_min_users`` users) factors, so
  they can be recommended;
- a **fusion** of five signals per (user, item): the ALS score, the cosine between the user's
  interest vector and the item's embedding, the item's decayed popularity (log) and trend, and
  whether the item is cold. Its weights come from a logistic regression fitted on a validation
  split (the last days before the as-of day), one set for light and one for heavy users: the
  user's behaviour decides which weights rank their list (a per-user constant could not reorder
  it).

Because the fusion is linear, the fused score of every (user, item) pair is one dot product of
an augmented user vector with an augmented item vector, so the whole catalog is scored exactly
with the same blocked top-N as plain ALS, not just a candidate set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from pipelines.core.settings import HybridSettings
from pipelines.embed.encoder import vector_matrix
from pipelines.model.als import Factors, InteractionMatrix, build_matrix
from pipelines.serve.lists import seen_matrix
from pipelines.serve.scoring import top_n

FEATURES = ("als", "cosine", "popularity", "trend", "cold")
SEGMENTS = ("light", "heavy")
MIN_POSITIVES = 5  # below this a segment borrows the pooled weights

Trainer = Callable[[InteractionMatrix], Factors]


# The columns of each input the hybrid reads (a model version hashes only these).
INPUT_COLUMNS = {
    "interactions": ("user_id", "item_id", "confidence"),
    "items": ("item_id", "n_users", "popularity", "trend"),
    "users": ("user_id", "n_events"),
    "item_vectors": ("item_id", "vector"),
    "interest": ("user_id", "vector"),
}


@dataclass(frozen=True)
class AsOf:
    """What the hybrid may know at the end of one day."""

    interactions: pl.DataFrame  # user_id, item_id, confidence (features as of the day)
    items: pl.DataFrame  # item_id, n_users, popularity (decayed), trend
    users: pl.DataFrame  # user_id, n_events (in the history window)
    item_vectors: pl.DataFrame  # item_id, vector: every item that may be recommended
    interest: pl.DataFrame | None  # user_id, vector; None when no interest memory exists


def fit_content_map(embeddings: np.ndarray, factors: np.ndarray, ridge: float) -> np.ndarray:
    """``W`` minimising ``|E W - V|^2 + ridge |W|^2`` (closed form, in float64)."""
    e = embeddings.astype(np.float64)
    gram = e.T @ e + ridge * np.eye(e.shape[1])
    return np.linalg.solve(gram, e.T @ factors.astype(np.float64)).astype(np.float32)


@dataclass
class Base:
    """ALS with the content map applied: the factor side of the hybrid, before fusion."""

    user_ids: pl.Series
    user_factors: np.ndarray
    item_ids: pl.Series  # ALS items and embedded catalog items, sorted
    item_factors: np.ndarray  # ALS factors for warm items, mapped ones for cold items
    item_vectors: np.ndarray  # embeddings aligned with item_ids (zeros where there is none)
    cold: np.ndarray  # bool per item
    item_signals: np.ndarray  # items x (popularity, trend): log1p(decayed popularity), trend
    content_map: np.ndarray  # embedding dim x factors
    n_warm_fit: int  # warm items the map was fitted on
    als: Factors | None  # the plain ALS factors, rows as in als_item_ids (not kept in the
    als_item_ids: pl.Series | None  # registry: published lists come from the fusion)


def build_base(asof: AsOf, cfg: HybridSettings, trainer: Trainer) -> Base:
    data = build_matrix(asof.interactions)
    factors = trainer(data)
    vectors = asof.item_vectors.select("item_id", "vector").sort("item_id")
    item_ids = pl.concat([data.item_ids, vectors["item_id"]]).unique().sort()
    # Every array below is aligned with these rows, so every join keeps the left order.
    frame = (
        pl.DataFrame({"item_id": item_ids})
        .join(pl.DataFrame({"item_id": data.item_ids,
                            "_als": np.arange(data.item_ids.len())}), on="item_id", how="left",
              maintain_order="left")
        .join(vectors.with_row_index("_emb"), on="item_id", how="left", maintain_order="left")
        .join(asof.items.select("item_id", "n_users", "popularity", "trend")
              .unique("item_id", keep="first"), on="item_id", how="left",
              maintain_order="left")
        .with_columns(pl.col("n_users", "popularity", "trend").fill_null(0))
    )
    assert frame["item_id"].equals(item_ids), "item rows out of order"
    dim = vectors.schema["vector"].size if vectors.height else 0
    emb = np.zeros((frame.height, dim), dtype=np.float32)
    has_emb = frame["_emb"].is_not_null().to_numpy()
    emb[has_emb] = vector_matrix(vectors)[frame["_emb"].drop_nulls().to_numpy()]
    item_factors = np.zeros((frame.height, factors.item.shape[1]), dtype=np.float32)
    in_als = frame["_als"].is_not_null().to_numpy()
    item_factors[in_als] = factors.item[frame["_als"].drop_nulls().to_numpy()]
    few_users = frame["n_users"].to_numpy() < cfg.cold_min_users
    warm = in_als & has_emb & ~few_users
    cold = has_emb & (few_users | ~in_als)
    content_map = np.zeros((dim, factors.item.shape[1]), dtype=np.float32)
    if warm.sum() >= 2 and dim:
        content_map = fit_content_map(emb[warm], item_factors[warm], cfg.ridge)
        item_factors[cold] = emb[cold] @ content_map
    signals = np.column_stack([np.log1p(frame["popularity"].to_numpy()),
                               frame["trend"].to_numpy()]).astype(np.float32)
    return Base(user_ids=data.user_ids, user_factors=factors.user, item_ids=item_ids,
                item_factors=item_factors, item_vectors=emb, cold=cold, item_signals=signals,
                content_map=content_map, n_warm_fit=int(warm.sum()), als=factors,
                als_item_ids=data.item_ids)


def interest_matrix(base: Base, interest: pl.DataFrame | None) -> np.ndarray:
    """Interest vectors aligned with ``base.user_ids`` (zeros for users without one)."""
    out = np.zeros((base.user_ids.len(), base.item_vectors.shape[1]), dtype=np.float32)
    if interest is None or interest.height == 0 or out.shape[1] == 0:
        return out
    idx = (pl.DataFrame({"user_id": base.user_ids}).with_row_index("_u")
           .join(interest.select("user_id", "vector"), on="user_id"))
    out[idx["_u"].to_numpy()] = vector_matrix(idx)
    return out


def heavy_users(base: Base, users: pl.DataFrame, cfg: HybridSettings) -> np.ndarray:
    """bool per ``base.user_ids``: at least ``heavy_user_events`` events in the window."""
    n = (pl.DataFrame({"user_id": base.user_ids})
         .join(users.select("user_id", "n_events").unique("user_id", keep="first"),
               on="user_id", how="left", maintain_order="left")
         ["n_events"].fill_null(0).to_numpy())
    return n >= cfg.heavy_user_events


# --- fusion ----------------------------------------------------------------------------------

@dataclass
class Fusion:
    """Standardisation of the features and one logistic-regression weight set per segment."""

    means: np.ndarray
    stds: np.ndarray
    weights: dict[str, np.ndarray]  # segment -> coefficients of FEATURES, then the intercept
    positives: dict[str, int] = field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict:
        return {"features": list(FEATURES), "means": self.means.tolist(),
                "stds": self.stds.tolist(),
                "weights": {k: v.tolist() for k, v in self.weights.items()},
                "positives": self.positives, "note": self.note}

    @classmethod
    def from_dict(cls, d: dict) -> Fusion:
        return cls(means=np.array(d["means"]), stds=np.array(d["stds"]),
                   weights={k: np.array(v) for k, v in d["weights"].items()},
                   positives=d.get("positives", {}), note=d.get("note", ""))

    @classmethod
    def als_only(cls, note: str) -> Fusion:
        """The fallback when there is nothing to fit on: rank by the ALS score."""
        w = np.zeros(len(FEATURES) + 1)
        w[0] = 1.0
        return cls(means=np.zeros(len(FEATURES)), stds=np.ones(len(FEATURES)),
                   weights={s: w.copy() for s in SEGMENTS}, note=note)


def pair_features(base: Base, interest: np.ndarray, users: np.ndarray,
                  items: np.ndarray) -> np.ndarray:
    """FEATURES for the (user row, item row) pairs."""
    als = np.einsum("ij,ij->i", base.user_factors[users], base.item_factors[items])
    cos = np.einsum("ij,ij->i", interest[users], base.item_vectors[items])
    return np.column_stack([als, cos, base.item_signals[items, 0], base.item_signals[items, 1],
                            base.cold[items].astype(np.float32)]).astype(np.float64)


def candidates(base: Base, interest: np.ndarray, rows: np.ndarray, n: int,
               seen: pl.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
    """(user row, item row) pairs: each user's top ``n`` by ALS, by cosine and by popularity
    (so the fusion also learns from what a popularity chart would have shown)."""
    pairs = []
    with_interest = np.abs(interest[rows]).sum(axis=1) > 0
    ones = np.ones((base.user_ids.len(), 1), dtype=np.float32)
    popularity = base.item_signals[:, :1]
    for user_vecs, item_vecs, subset in ((base.user_factors, base.item_factors, rows),
                                         (interest, base.item_vectors, rows[with_interest]),
                                         (ones, popularity, rows)):
        if len(subset) == 0:
            continue
        exclude = seen_matrix(seen, base.user_ids.gather(subset), base.item_ids) \
            if seen is not None else None
        idx, _ = top_n(user_vecs[subset], item_vecs, n, exclude=exclude)
        u = np.repeat(subset, idx.shape[1])
        i = idx.ravel()
        pairs.append(np.column_stack([u[i >= 0], i[i >= 0]]))
    both = np.unique(np.concatenate(pairs), axis=0)
    return both[:, 0], both[:, 1]


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """L2-regularised logistic regression (intercept unpenalised), by L-BFGS."""
    from scipy.optimize import minimize

    xb = np.column_stack([x, np.ones(len(x))])
    penalty = np.full(xb.shape[1], l2)
    penalty[-1] = 0.0
    n = len(y)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = xb @ w
        # log(1 + e^z) - y z, computed stably.
        value = (np.logaddexp(0, z) - y * z).sum() / n + 0.5 * (penalty * w * w).sum()
        grad = xb.T @ (1 / (1 + np.exp(-z)) - y) / n + penalty * w
        return value, grad

    return minimize(loss, np.zeros(xb.shape[1]), jac=True, method="L-BFGS-B").x


def fit_fusion(base: Base, interest: pl.DataFrame | None, users: pl.DataFrame,
               truth: pl.DataFrame, cfg: HybridSettings,
               seen: pl.DataFrame | None) -> Fusion:
    """Weights from the validation split: ``base`` and ``interest`` as of its start, ``truth``
    the new positive pairs of its days."""
    known = pl.DataFrame({"user_id": base.user_ids}).with_row_index("_u").join(
        truth.select("user_id").unique(), on="user_id").sort("user_id")
    if known.height > cfg.validation_users:
        # A fixed sample spread over all users (not the oldest ids) keeps the fit affordable;
        # polars' hash is stable for the pinned version.
        known = (known.sort(pl.col("user_id").hash(seed=0), "user_id")
                 .head(cfg.validation_users).sort("user_id"))
    if known.is_empty():
        return Fusion.als_only("no validation users: ALS scores only")
    imat = interest_matrix(base, interest)
    u, i = candidates(base, imat, known["_u"].to_numpy().astype(np.int64), cfg.candidates, seen)
    x = pair_features(base, imat, u, i)
    labels = (truth.select("user_id", "item_id").unique()
              .join(pl.DataFrame({"user_id": base.user_ids}).with_row_index("_u"),
                    on="user_id")
              .join(pl.DataFrame({"item_id": base.item_ids}).with_row_index("_i"),
                    on="item_id")
              .select(pl.col("_u").cast(pl.Int64), pl.col("_i").cast(pl.Int64),
                      pl.lit(1.0).alias("y")))
    y = (pl.DataFrame({"_u": u.astype(np.int64), "_i": i.astype(np.int64)})
         .join(labels, on=["_u", "_i"], how="left", maintain_order="left")
         ["y"].fill_null(0.0).to_numpy())
    if y.sum() < MIN_POSITIVES:
        return Fusion.als_only(f"{int(y.sum())} validation positives among the candidates: "
                               "ALS scores only")
    means, stds = x.mean(axis=0), x.std(axis=0)
    stds[stds == 0] = 1.0
    z = (x - means) / stds
    heavy = heavy_users(base, users, cfg)[u]
    pooled = _fit_logistic(z, y, cfg.fusion_l2)
    weights, positives = {}, {}
    for name, mask in (("light", ~heavy), ("heavy", heavy)):
        positives[name] = int(y[mask].sum())
        weights[name] = _fit_logistic(z[mask], y[mask], cfg.fusion_l2) \
            if positives[name] >= MIN_POSITIVES else pooled
    return Fusion(means=means, stds=stds, weights=weights, positives=positives)


# --- the fitted hybrid -----------------------------------------------------------------------

@dataclass
class Hybrid:
    base: Base
    fusion: Fusion
    interest: np.ndarray  # aligned with base.user_ids
    heavy: np.ndarray  # aligned with base.user_ids

    def augmented(self) -> Factors:
        """User and item vectors whose dot product is the fused logit of every pair."""
        raw = {s: self.fusion.weights[s][:-1] / self.fusion.stds for s in SEGMENTS}
        const = {s: self.fusion.weights[s][-1] - (raw[s] * self.fusion.means).sum()
                 for s in SEGMENTS}
        b = self.base
        w = np.where(self.heavy[:, None], raw["heavy"], raw["light"])  # users x features
        c = np.where(self.heavy, const["heavy"], const["light"])
        user = np.hstack([w[:, [0]] * b.user_factors, w[:, [1]] * self.interest,
                          w[:, 2:5], c[:, None]]).astype(np.float32)
        item = np.hstack([b.item_factors, b.item_vectors, b.item_signals,
                          b.cold[:, None].astype(np.float32),
                          np.ones((b.item_ids.len(), 1), dtype=np.float32)]).astype(np.float32)
        return Factors(user=user, item=item)


def fit_hybrid(train: AsOf, validation: tuple[AsOf, pl.DataFrame] | None,
               cfg: HybridSettings, trainer: Trainer) -> Hybrid:
    """The hybrid as of ``train``'s day; ``validation`` is (the inputs as of the validation
    split's start, the positive pairs of its days), or None to rank by ALS alone."""
    if validation is None:
        fusion = Fusion.als_only("no validation split: ALS scores only")
    else:
        val_asof, truth = validation
        val_base = build_base(val_asof, cfg, trainer)
        fusion = fit_fusion(val_base, val_asof.interest, val_asof.users, truth, cfg,
                            val_asof.interactions.select("user_id", "item_id"))
    base = build_base(train, cfg, trainer)
    return Hybrid(base=base, fusion=fusion, interest=interest_matrix(base, train.interest),
                  heavy=heavy_users(base, train.users, cfg))
