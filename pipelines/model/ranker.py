"""Retrieve, then rank: every generator's best items are a user's candidates, and a LightGBM
lambdarank model orders them by features that no single generator sees together.

Features of a (user, item) candidate:

- each personal generator's score, and each generator's rank (its top K; K where it did not
  propose the item), plus the item's rank by content among cold items and among new ones;
- the item's events over 1, 7 and 30 days, decayed popularity, trend (the last 7 days against
  the 7 before), distinct users, age in days, mean rating and coldness;
- the user's events and active days in the window, days since the last one, items seen, and
  whether there is an interest memory;
- the user's share of confidence in the item's category.

Training is temporal: at each of ``ranker.splits`` days before the as-of day (``split_step_days``
apart) the generators are fitted on what was known then, and the labels are the new positive
pairs of the ``label_days`` after it. Its candidates are generated in precompute's user shards
(each shard's rows depend on its users alone, so any sharding gives the same set). Several
boosters with different seeds are averaged. It is deterministic for one seed and thread count.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import scipy.sparse as sp

from pipelines.core.settings import RankerSettings
from pipelines.model.retrieval import (
    GENERATORS,
    ITEM_STATS,
    PERSONAL,
    USER_STATS,
    Retrieval,
)
from pipelines.serve.scoring import rank_scores
from pipelines.serve.shards import shard_of

# Candidate sources beside the generators, both by content: cold items, and items first seen
# in the last ``new_item_days`` days.
COLD, NEW = "cold_items", "new_items"
FEATURES = (
    *[f"{g}_score" for g in PERSONAL],
    *[f"{g}_rank" for g in (*GENERATORS, COLD, NEW)],
    *[f"item_{s}" for s in ITEM_STATS],
    *[f"user_{s}" for s in USER_STATS],
    "category_affinity",
)
# Counts enter as log1p, so a tree splits them where they differ in ratio.
_LOG_ITEM = {"n_1d", "n_7d", "n_30d", "pop_decayed", "n_users"}
_LOG_USER = {"n_events", "n_items"}


@dataclass(frozen=True)
class Candidates:
    """A block's candidate pairs (rows of the retrieval) and their features."""

    users: np.ndarray  # user row per pair
    local: np.ndarray  # the pair's position in the block's rows
    items: np.ndarray  # item row per pair
    features: np.ndarray  # pairs x FEATURES, float32


def _block_exclusion(ret: Retrieval, rows: np.ndarray, exclude: sp.csr_matrix | None,
                     item_mask: np.ndarray | None) -> np.ndarray:
    """users x items: True where an item must not be a candidate (seen, or not available)."""
    banned = np.zeros((len(rows), ret.n_items), dtype=bool)
    if exclude is not None:
        coo = exclude.tocoo()
        banned[coo.row, coo.col] = True
    if item_mask is not None:
        banned[:, ~item_mask] = True
    return banned


def _ranks(scores: np.ndarray, banned: np.ndarray, k: int) -> np.ndarray:
    """Each row's rank (0 = best) of its top ``k`` eligible items; ``k`` elsewhere."""
    masked = np.where(banned, -np.inf, scores)
    idx, best = rank_scores(masked, min(k, masked.shape[1]))
    ranks = np.full(scores.shape, k, dtype=np.int32)
    rows = np.repeat(np.arange(len(scores)), idx.shape[1])
    valid = (idx >= 0).ravel() & np.isfinite(best).ravel()
    ranks[rows[valid], idx.ravel()[valid]] = np.tile(
        np.arange(idx.shape[1], dtype=np.int32), len(scores))[valid]
    return ranks


def _proposes(ret: Retrieval, name: str, rows: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """users x items: where a generator has evidence for an item, so that its top K never
    fills up with arbitrary ties (a user without an embedding, an item no one co-occurred
    with, an item without events in the window)."""
    if name == "als":
        return np.ones(scores.shape, dtype=bool)
    if name in ("interest", "content"):
        vectors = ret.interest if name == "interest" else ret.content
        has_user = np.abs(vectors[rows]).sum(axis=1) > 0
        has_item = np.abs(ret.item_vectors).sum(axis=1) > 0
        return has_user[:, None] & has_item[None, :]
    return scores > 0


def candidates(ret: Retrieval, rows: np.ndarray, k: int, new_item_days: int,
               exclude: sp.csr_matrix | None = None,
               item_mask: np.ndarray | None = None, use_interest: bool = True) -> Candidates:
    """The union of every generator's top ``k`` for users ``rows``, with their features.

    ``exclude``: rows x items, non-zero where an item must not be proposed to that user;
    ``item_mask``: True for items that may be proposed at all; ``use_interest``: whether the
    interest memory proposes and describes candidates (a ranker trained on days without one
    must not see it when it scores).
    """
    banned = _block_exclusion(ret, rows, exclude, item_mask)
    scores = {g: ret.scores(g, rows) for g in GENERATORS}
    if not use_interest:
        scores["interest"] = np.zeros_like(scores["interest"])
    ranks = {g: _ranks(scores[g], banned | ~_proposes(ret, g, rows, scores[g]), k)
             for g in GENERATORS}
    # By content among cold items (nobody else proposes an item nobody has touched yet) and
    # among new ones.
    by_content = banned | ~_proposes(ret, "content", rows, scores["content"])
    new = ret.item_stats[:, ITEM_STATS.index("age_days")] <= new_item_days
    ranks[COLD] = _ranks(scores["content"], by_content | ~ret.cold()[None, :], k)
    ranks[NEW] = _ranks(scores["content"], by_content | ~(new & ~ret.cold())[None, :], k)
    chosen = np.zeros(banned.shape, dtype=bool)
    for r in ranks.values():
        chosen |= r < k
    chosen &= ~banned
    u, i = np.nonzero(chosen)
    features = _features(ret, rows[u], u, i, scores, ranks)
    if not use_interest:
        features[:, FEATURES.index("user_has_interest")] = 0
    return Candidates(users=rows[u], local=u, items=i, features=features)


def _features(ret: Retrieval, users: np.ndarray, block_rows: np.ndarray, items: np.ndarray,
              scores: dict[str, np.ndarray], ranks: dict[str, np.ndarray]) -> np.ndarray:
    cols = [scores[g][block_rows, items] for g in PERSONAL]
    cols += [ranks[g][block_rows, items] for g in (*GENERATORS, COLD, NEW)]
    for j, name in enumerate(ITEM_STATS):
        value = ret.item_stats[items, j]
        cols.append(np.log1p(value) if name in _LOG_ITEM else value)
    for j, name in enumerate(USER_STATS):
        value = ret.user_stats[users, j]
        cols.append(np.log1p(value) if name in _LOG_USER else value)
    cols.append(ret.category_affinity(users, items))
    return np.column_stack(cols).astype(np.float32)


# A ranker training set: features, labels, group sizes and the user row of each group.
TrainingSet = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def training_users(ret: Retrieval, truth: pl.DataFrame, cfg: RankerSettings) -> np.ndarray:
    """The retrieval rows (sorted) of the users of ``truth`` it knows: at most
    ``cfg.max_train_users`` of them, a fixed hash sample."""
    known = (pl.DataFrame({"user_id": ret.user_ids}).with_row_index("_u")
             .join(truth.select("user_id").unique(), on="user_id"))
    if known.height > cfg.max_train_users:
        # crc32, as precompute's shards: the sample must not move with a library release.
        crc = pl.Series([zlib.crc32(u.encode()) for u in known["user_id"]], dtype=pl.UInt32)
        known = known.with_columns(crc.alias("_crc")).sort("_crc", "user_id").head(
            cfg.max_train_users)
    return np.sort(known["_u"].to_numpy().astype(np.int64))


def labelled(ret: Retrieval, truth: pl.DataFrame, cfg: RankerSettings, k: int,
             new_item_days: int, exclude: sp.csr_matrix | None = None,
             use_interest: bool = True, block: int = 512, shard: int = 0, shards: int = 1,
             ) -> TrainingSet:
    """The training set of the users of ``truth`` (``user_id, item_id``: the new positive
    pairs after the retrieval's day) that :func:`training_users` picks and that fall in user
    shard ``shard`` of ``shards`` (precompute's crc32 shards), ``block`` users at a time.
    Users none of whose positives is a candidate are left out (lambdarank learns nothing from
    them); ``exclude`` (users x items, default what they saw) is never a candidate. A user's
    rows depend on that user alone, so :func:`merge_sets` of every shard's set is the
    one-shard set."""
    exclude = ret.seen if exclude is None else exclude
    rows = training_users(ret, truth, cfg)
    if shards > 1:
        rows = rows[shard_of(ret.user_ids.gather(rows), shards) == shard]
    positives = (truth.select("user_id", "item_id").unique()
                 .join(pl.DataFrame({"user_id": ret.user_ids}).with_row_index("_u"),
                       on="user_id")
                 .join(pl.DataFrame({"item_id": ret.item_ids}).with_row_index("_i"),
                       on="item_id"))
    labels = sp.csr_matrix((np.ones(positives.height, dtype=np.float32),
                            (positives["_u"].to_numpy(), positives["_i"].to_numpy())),
                           shape=(ret.user_ids.len(), ret.n_items))
    xs, ys, groups, owners = [], [], [], []
    for start in range(0, len(rows), block):
        part = rows[start:start + block]
        cand = candidates(ret, part, k, new_item_days, exclude=exclude[part],
                          use_interest=use_interest)
        y = np.asarray(labels[cand.users, cand.items]).ravel().astype(np.float32)
        # Candidates come out grouped by user (row-major nonzero), as lambdarank needs them.
        users, sizes = np.unique(cand.users, return_counts=True)
        hits = np.bincount(np.searchsorted(users, cand.users), weights=y, minlength=len(users))
        keep = np.repeat(hits > 0, sizes)
        xs.append(cand.features[keep])
        ys.append(y[keep])
        groups.append(sizes[hits > 0])
        owners.append(users[hits > 0])
    if not xs:
        return (np.zeros((0, len(FEATURES)), np.float32), np.zeros(0, np.float32),
                np.zeros(0, np.int64), np.zeros(0, np.int64))
    return np.vstack(xs), np.concatenate(ys), np.concatenate(groups), np.concatenate(owners)


def merge_sets(parts: list[TrainingSet]) -> TrainingSet:
    """Shards' training sets as one, groups in user-row order whatever the sharding."""
    x = np.vstack([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    sizes = np.concatenate([p[2] for p in parts]).astype(np.int64)
    owners = np.concatenate([p[3] for p in parts]).astype(np.int64)
    order = np.argsort(owners, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rows = (np.concatenate([np.arange(starts[g], starts[g] + sizes[g]) for g in order])
            if len(order) else np.zeros(0, np.int64))
    return x[rows], y[rows], sizes[order], owners[order]


@dataclass
class Ranker:
    """Averaged LightGBM lambdarank boosters over FEATURES."""

    models: list[str]  # LightGBM model texts
    info: dict = field(default_factory=dict)  # what it was trained on
    _boosters: list | None = field(default=None, repr=False, compare=False)

    @property
    def uses_interest(self) -> bool:
        """Whether its training days had an interest memory to learn from."""
        return bool(self.info.get("interest", True))

    def predict(self, features: np.ndarray) -> np.ndarray:
        import lightgbm as lgb

        if self._boosters is None:
            self._boosters = [lgb.Booster(model_str=m) for m in self.models]
        if not len(features):
            return np.zeros(0, dtype=np.float64)
        return np.mean([b.predict(features, num_threads=1) for b in self._boosters], axis=0)

    def to_json(self) -> str:
        return json.dumps({"features": list(FEATURES), "models": self.models,
                           "info": self.info}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Ranker:
        data = json.loads(text)
        if tuple(data["features"]) != FEATURES:
            raise ValueError("the stored ranker was trained on other features than this "
                             "release computes: train it again")
        return cls(models=data["models"], info=data["info"])


def fit_ranker(sets: list[TrainingSet], cfg: RankerSettings,
               seed: int, use_interest: bool = True) -> Ranker | None:
    """Boosters on the stacked training sets; None with fewer than ``cfg.min_train_users``
    users that have a positive among their candidates."""
    import lightgbm as lgb

    sets = [s for s in sets if len(s[2])]
    n_groups = sum(len(s[2]) for s in sets)
    if n_groups < cfg.min_train_users:
        return None
    x = np.vstack([s[0] for s in sets])
    y = np.concatenate([s[1] for s in sets])
    groups = np.concatenate([s[2] for s in sets])
    models = []
    for member in range(cfg.ensemble):
        params = {
            "objective": "lambdarank", "lambdarank_truncation_level": 20,
            "learning_rate": cfg.learning_rate, "num_leaves": cfg.num_leaves,
            "min_data_in_leaf": cfg.min_data_in_leaf, "feature_fraction": 0.8,
            "bagging_fraction": 0.8, "bagging_freq": 1, "seed": seed + member,
            "deterministic": True, "force_row_wise": True, "num_threads": cfg.threads,
            "verbosity": -1,
        }
        booster = lgb.train(params, lgb.Dataset(x, y, group=groups, feature_name=list(FEATURES),
                                                free_raw_data=True),
                            num_boost_round=cfg.trees)
        models.append(booster.model_to_string())
    return Ranker(models=models, info={"users": int(n_groups), "rows": int(len(y)),
                                       "positives": int(y.sum()), "splits": len(sets),
                                       "interest": use_interest})
