"""Retrieve, then rank: every generator's best items are a user's candidates, and a LightGBM
lambdarank model orders them by features that no single generator sees together.

Features of a (user, item) candidate:

- each personal generator's score, and each generator's rank (its top K; K where it did not
  propose the item), plus the item's rank by content among cold items and among new ones;
- the item's events over 1, 7 and 30 days, decayed popularity, trend (the last 7 days against
  the 7 before), distinct users, age in days, mean rating and coldness;
- the user's events and active days in the window, days since the last one, items seen, and
  whether there is an interest memory;
- the user's share of their items in the item's category.

Training is temporal: at each of ``ranker.splits`` days before the as-of day (``split_step_days``
apart) the generators are fitted on what was known then, and the labels are the new positive
pairs of the ``label_days`` after it; days are added, latest first, until their candidates
reach ``ranker.max_train_rows``. Its candidates are generated in precompute's user shards
(each shard's rows depend on its users alone, so any sharding gives the same set). Several
boosters with different seeds, trained side by side, are averaged. It is deterministic for one
seed and thread count; large predictions run on the boosters compiled by lleaves, which give
LightGBM's own predictions bit for bit.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from pipelines.core.devices import cpu_threads
from pipelines.core.settings import RankerSettings
from pipelines.model.retrieval import (
    GENERATORS,
    ITEM_STATS,
    NEIGHBOURHOOD,
    PERSONAL,
    POPULARITY,
    USER_STATS,
    Retrieval,
)
from pipelines.serve.scoring import cache_rows, rank_scores
from pipelines.serve.shards import hash_sample, shard_of

log = logging.getLogger("recs.ranker")

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
    content: np.ndarray  # the block's rows x items content scores (exploration reads them)


def _banned(ret: Retrieval, rows: np.ndarray, exclude: sp.csr_matrix | None,
            item_mask: np.ndarray | None) -> np.ndarray:
    """users x items: True where an item must not be a candidate (seen, or not available)."""
    banned = np.zeros((len(rows), ret.n_items), dtype=bool)
    if exclude is not None:
        coo = exclude.tocoo()
        banned[coo.row, coo.col] = True
    if item_mask is not None:
        banned[:, ~item_mask] = True
    return banned


@dataclass(frozen=True)
class Top:
    """Each block row's best ``k`` of one source: the row, the item and its rank (0 = best)."""

    local: np.ndarray
    items: np.ndarray
    ranks: np.ndarray


def best_of_rows(local: np.ndarray, items: np.ndarray, scores: np.ndarray, k: int) -> Top:
    """The ``k`` best entries of each row among the given (row, item, score) ones, by score
    descending, then lowest item index: ``rank_scores``' rule, without a dense block. Rows and
    items are non-negative."""
    key = _descending(local, scores)
    item_bits = int(items.max()).bit_length() if len(items) else 0
    if len(items) and int(local.max()).bit_length() + 32 + item_bits <= 63:
        # Row, score and item fit one int64, whose plain sort does the work of a lexsort on
        # two keys (equal keys are equal entries: the sort need not be stable).
        packed = np.sort((key << item_bits) | items)
        local, items = packed >> (32 + item_bits), packed & ((1 << item_bits) - 1)
    else:
        order = np.lexsort((items, key))
        local, items = local[order], items[order]
    ranks = np.arange(len(local)) - np.searchsorted(local, local)
    keep = ranks < k
    return Top(local[keep], items[keep], ranks[keep].astype(np.int32))


def _descending(local: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """One int64 key that sorts by ``local``, then float32 ``scores`` (no NaN) descending, in
    its low 32 bits: a sort on it does the work of two (the float's bits order like the float
    once negatives are flipped; adding 0 makes -0.0 equal to 0.0)."""
    if scores.dtype != np.float32:
        raise TypeError(f"scores must be float32, not {scores.dtype}: the key holds 32 bits")
    bits = (scores + np.float32(0)).view(np.int32).astype(np.int64)
    ascending = np.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    return (local.astype(np.int64) << 32) + ((2**31 - 1) - ascending)


def _dense_top(scores: np.ndarray, banned: np.ndarray, k: int,
               users: np.ndarray | None = None, items: np.ndarray | None = None,
               columns: np.ndarray | None = None) -> Top:
    """The top ``k`` of each row of a dense block among the entries not ``banned``, in rows
    where ``users`` (bool per row) and columns where ``items`` (bool per item) hold;
    ``columns``: rank only these items (columns of both ``scores`` and ``banned``). The masks
    are applied to cache-sized slices, never built for the whole block."""
    n_cols = scores.shape[1] if columns is None else len(columns)
    k = min(k, n_cols)
    idx = np.empty((len(scores), k), dtype=np.int64)
    best = np.empty((len(scores), k), dtype=np.float32)
    step = cache_rows(n_cols)
    unavailable = None if items is None else ~(items if columns is None else items[columns])
    for start in range(0, len(scores), step):  # the masked copy stays in cache
        at = slice(start, start + step)
        part, off = (scores[at], banned[at]) if columns is None else \
            (scores[at][:, columns], banned[at][:, columns])
        masked = np.where(off, np.float32(-np.inf), part)
        if users is not None:
            masked[~users[at]] = -np.inf
        if unavailable is not None:
            masked[:, unavailable] = -np.inf
        idx[at], best[at] = rank_scores(masked, k)
    valid = (idx >= 0) & np.isfinite(best)
    local = np.broadcast_to(np.arange(len(idx))[:, None], idx.shape)[valid]
    ranks = np.broadcast_to(np.arange(idx.shape[1], dtype=np.int32), idx.shape)[valid]
    found = idx[valid] if columns is None else columns[idx[valid]]
    return Top(local, found, ranks)


def _sparse_top(scores: sp.csr_matrix, banned: np.ndarray, k: int) -> Top:
    """The top ``k`` of each row among a sparse block's positive, allowed entries: an item
    with no evidence is never proposed, so a short row stays short."""
    coo = scores.tocoo()
    keep = (coo.data > 0) & ~banned[coo.row, coo.col]
    return best_of_rows(coo.row[keep].astype(np.int64), coo.col[keep].astype(np.int64),
                        coo.data[keep], k)


def _shared_top(values: np.ndarray, banned: np.ndarray, exclude: sp.csr_matrix | None,
                item_mask: np.ndarray | None, k: int) -> Top:
    """The top ``k`` of a score every user shares (popularity): the first ``k`` items of one
    global order that each user may see. Only an order's first ``k`` + (the most items a row
    excludes) can matter."""
    order = np.flatnonzero((values > 0) & (item_mask if item_mask is not None else True))
    order = order[np.lexsort((order, -values[order]))]
    most = int(exclude.getnnz(axis=1).max()) if exclude is not None and exclude.shape[0] else 0
    head = order[:k + most]
    allowed = ~banned[:, head]
    ranks = np.cumsum(allowed, axis=1, dtype=np.int32) - 1
    local, j = np.nonzero(allowed & (ranks < k))
    return Top(local, head[j], ranks[local, j])


def _at(scores: np.ndarray | sp.csr_matrix, local: np.ndarray, items: np.ndarray,
        ) -> np.ndarray:
    """A block's scores at the (row, item) pairs."""
    if sp.issparse(scores):
        # Looked up by search among the sorted entries: SciPy's own lookup scans each row
        # when the pairs are few against the entries, as here.
        scores.sum_duplicates()  # canonical: one sorted entry per (row, column)
        entries = scores.tocoo()
        n_cols = scores.shape[1]
        keys = entries.row.astype(np.int64) * n_cols + entries.col
        wanted = local.astype(np.int64) * n_cols + items
        if not len(keys):
            return np.zeros(len(wanted), dtype=np.float32)
        pos = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        return np.where(keys[pos] == wanted, entries.data[pos], 0).astype(np.float32)
    return scores[local, items]


# Dense generators that propose only where the user and the item have vectors.
_BY_VECTORS = ("interest", "content")


def candidates(ret: Retrieval, rows: np.ndarray, k: int, new_item_days: int,
               exclude: sp.csr_matrix | None = None,
               item_mask: np.ndarray | None = None, use_interest: bool = True) -> Candidates:
    """The union of every generator's top ``k`` for users ``rows``, with their features.

    ``exclude``: rows x items, non-zero where an item must not be proposed to that user;
    ``item_mask``: True for items that may be proposed at all; ``use_interest``: whether the
    interest memory proposes and describes candidates (a ranker trained on days without one
    must not see it when it scores).

    Each generator's top ``k`` comes from its own structure: a dense block only for the
    dot products, the sparse product's entries for the neighbourhood ones, one global order
    for popularity. Features are read at the chosen pairs only, so a block costs
    ``block x items`` a few bytes at a time, whatever the number of generators.
    """
    banned = _banned(ret, rows, exclude, item_mask)
    n_items = ret.n_items
    scores: dict[str, np.ndarray | sp.csr_matrix] = {}
    tops: dict[str, Top] = {}
    has_item = ret.has_vector
    for g in PERSONAL:
        if g == "interest" and not use_interest:
            continue
        if g in NEIGHBOURHOOD:
            scores[g] = ret.sparse_scores(g, rows)
            tops[g] = _sparse_top(scores[g], banned, k)
            continue
        scores[g] = ret.scores(g, rows)
        if g in _BY_VECTORS:
            has_user = np.abs(getattr(ret, g)[rows]).sum(axis=1) > 0
            tops[g] = _dense_top(scores[g], banned, k, users=has_user, items=has_item)
        else:
            tops[g] = _dense_top(scores[g], banned, k)
    for g in POPULARITY:
        tops[g] = _shared_top(ret.popularity(g), banned, exclude, item_mask, k)
    # By content among cold items (nobody else proposes an item nobody has touched yet) and
    # among new ones.
    has_user = np.abs(ret.content[rows]).sum(axis=1) > 0
    new = ret.item_stats[:, ITEM_STATS.index("age_days")] <= new_item_days
    cold = ret.cold()
    for name, wanted in ((COLD, cold & has_item), (NEW, new & ~cold & has_item)):
        tops[name] = _dense_top(scores["content"], banned, k, users=has_user,
                                columns=np.flatnonzero(wanted))
    # The pairs, sorted and each once: marked in a block-sized mask (a few milliseconds where
    # np.unique's sort of the pairs took tens).
    marked = np.zeros(len(rows) * n_items, dtype=bool)
    for t in tops.values():
        marked[t.local * n_items + t.items] = True
    keys = np.flatnonzero(marked)
    del marked
    local, items = keys // n_items, keys % n_items
    # A source's rank is k where it did not propose the pair (interest, when not used: always).
    ranks = {name: np.full(len(keys), k, dtype=np.int32) for name in (*GENERATORS, COLD, NEW)}
    for name, top in tops.items():
        ranks[name][np.searchsorted(keys, top.local * n_items + top.items)] = top.ranks
    at = {g: (_at(scores[g], local, items) if g in scores else np.zeros(len(keys), np.float32))
          for g in PERSONAL}
    features = _features(ret, rows[local], items, at, ranks)
    if not use_interest:
        features[:, FEATURES.index("user_has_interest")] = 0
    return Candidates(users=rows[local], local=local, items=items, features=features,
                      content=scores["content"])


def _features(ret: Retrieval, users: np.ndarray, items: np.ndarray,
              scores: dict[str, np.ndarray], ranks: dict[str, np.ndarray]) -> np.ndarray:
    """FEATURES of the pairs (``users``, ``items``), given each generator's score and every
    source's rank at them."""
    # Written column by column into one float32 array: stacking the columns first, then
    # casting, made two copies of the pairs' features (the largest arrays of a block).
    out = np.empty((len(items), len(FEATURES)), dtype=np.float32, order="F")
    cols = iter(range(len(FEATURES)))
    for g in PERSONAL:
        out[:, next(cols)] = scores[g]
    for g in (*GENERATORS, COLD, NEW):
        out[:, next(cols)] = ranks[g]
    for j, name in enumerate(ITEM_STATS):
        value = ret.item_stats[items, j]
        out[:, next(cols)] = np.log1p(value) if name in _LOG_ITEM else value
    for j, name in enumerate(USER_STATS):
        value = ret.user_stats[users, j]
        out[:, next(cols)] = np.log1p(value) if name in _LOG_USER else value
    out[:, next(cols)] = ret.category_affinity(users, items)
    return out


# A ranker training set: features, labels, group sizes and the user row of each group.
TrainingSet = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def training_users(ret: Retrieval, truth: pl.DataFrame, cfg: RankerSettings) -> np.ndarray:
    """The retrieval rows (sorted) of the users of ``truth`` it knows: at most
    ``cfg.max_train_users`` of them, a fixed hash sample."""
    known = (pl.DataFrame({"user_id": ret.user_ids}).with_row_index("_u")
             .join(truth.select("user_id").unique(), on="user_id"))
    chosen = hash_sample(known["user_id"], cfg.max_train_users)
    known = known.filter(pl.col("user_id").is_in(chosen.implode()))
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


# Rows a ranker predicts in one process before its boosters are compiled to machine code
# (lleaves, about a second a booster, several times LightGBM's rate): a night's precompute
# and evaluation pass it, a test's small worlds do not.
COMPILE_AFTER_ROWS = 200_000
_COMPILING = threading.Lock()


@dataclass
class Ranker:
    """Averaged LightGBM lambdarank boosters over FEATURES."""

    models: list[str]  # LightGBM model texts
    info: dict = field(default_factory=dict)  # what it was trained on
    # Each thread's own boosters: a booster's predictions lock it against other threads.
    _boosters: dict[int, list] = field(default_factory=dict, repr=False, compare=False)
    # The compiled boosters (None: not yet, [] : they did not reproduce LightGBM's output).
    _compiled: list | None = field(default=None, repr=False, compare=False)
    _rows: int = field(default=0, repr=False, compare=False)

    @property
    def uses_interest(self) -> bool:
        """Whether its training days had an interest memory to learn from."""
        return bool(self.info.get("interest", True))

    def predict(self, features: np.ndarray, threads: int = 0) -> np.ndarray:
        """The boosters' mean prediction; ``threads``: 0 for every core. A row's prediction
        depends neither on the thread count (training does) nor on the rows beside it."""
        if not len(features):
            return np.zeros(0, dtype=np.float64)
        x = np.ascontiguousarray(features, dtype=np.float64)  # as LightGBM reads them
        self._rows += len(x)
        if self._compiled is None and self._rows > COMPILE_AFTER_ROWS:
            self.compile(x)
        if self._compiled:
            jobs = threads or cpu_threads()
            return np.mean([m.predict(x, n_jobs=jobs) for m in self._compiled], axis=0)
        return np.mean([b.predict(x, num_threads=threads) for b in self._lightgbm()], axis=0)

    def compile(self, sample: np.ndarray) -> bool:
        """Compile the boosters now (once), checked on the first rows of ``sample``; whether
        predictions run on them."""
        if not len(sample):
            return False  # nothing to check them on: not yet
        with _COMPILING:
            if self._compiled is None:
                self._compiled = _compiled(self.models, self._lightgbm(),
                                           np.asarray(sample[:4096], dtype=np.float64))
        return bool(self._compiled)

    def __getstate__(self) -> dict:
        # Boosters and compiled code are rebuilt where the ranker lands.
        return {"models": self.models, "info": self.info}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def _lightgbm(self) -> list:
        import lightgbm as lgb

        boosters = self._boosters.get(threading.get_ident())
        if boosters is None:
            boosters = [lgb.Booster(model_str=m) for m in self.models]
            self._boosters[threading.get_ident()] = boosters
        return boosters

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


def _compiled(models: list[str], boosters: list, sample: np.ndarray) -> list:
    """The boosters compiled by lleaves, each summing its trees in LightGBM's order (one
    block) so that it gives LightGBM's predictions bit for bit: checked on ``sample``, and
    none are used if any differs."""
    import tempfile

    import lleaves

    out = []
    with tempfile.TemporaryDirectory() as folder:
        for j, (text, booster) in enumerate(zip(models, boosters, strict=True)):
            path = Path(folder) / f"booster-{j}.txt"
            path.write_text(text)
            model = lleaves.Model(model_file=str(path))
            model.compile(fblocksize=max(model.num_trees(), 1))
            if not np.array_equal(model.predict(sample, n_jobs=1),
                                  booster.predict(sample, num_threads=1)):
                log.warning("the compiled ranker does not reproduce LightGBM's predictions: "
                            "LightGBM predicts")
                return []
            out.append(model)
    return out


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

    def member(m: int) -> str:
        params = {
            "objective": "lambdarank", "lambdarank_truncation_level": 20,
            "learning_rate": cfg.learning_rate, "num_leaves": cfg.num_leaves,
            "min_data_in_leaf": cfg.min_data_in_leaf, "feature_fraction": 0.8,
            "bagging_fraction": 0.8, "bagging_freq": 1, "seed": seed + m,
            "deterministic": True, "force_row_wise": True, "num_threads": cfg.threads,
            "verbosity": -1,
        }
        booster = lgb.train(params, lgb.Dataset(x, y, group=groups, feature_name=list(FEATURES),
                                                free_raw_data=True),
                            num_boost_round=cfg.trees)
        return booster.model_to_string()

    # Each booster trains on its own cfg.threads, so side by side (LightGBM releases the GIL)
    # they give the boosters one at a time would.
    side_by_side = max(1, min(cfg.ensemble, cpu_threads() // cfg.threads))
    with ThreadPoolExecutor(side_by_side) as pool:
        models = list(pool.map(member, range(cfg.ensemble)))
    return Ranker(models=models, info={"users": int(n_groups), "rows": int(len(y)),
                                       "positives": int(y.sum()), "splits": len(sets),
                                       "interest": use_interest})
