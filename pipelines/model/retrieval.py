"""Candidate generators: every cheap, well-understood way of scoring items for a user, fitted once
as of a day and scored in user blocks. The score of item i for user u:

- ``als``: ALS factors; cold items get factors from their embedding through a ridge map
  fitted on warm items;
- ``itemknn``: the sum, over the user's items j, of cos(j, i), the cosine of time-decayed
  co-occurrence (each item keeps its top neighbours);
- ``recent_cooc``: the same over the user's last items, the latest weighing most;
- ``sequence``: how often i came within a few steps after the user's last items in other
  users' histories;
- ``interest``: the cosine of the user-interest memory and the item's embedding;
- ``content``: the cosine of the mean embedding of the user's last items and the item's;
- ``pop_1d``, ``pop_7d``, ``pop_30d``: the item's events in the last 1, 7 and 30 days;
- ``pop_decayed``: its time-decayed popularity.

``als_plain`` (ALS's own factors, items it was fitted on only) is a baseline, not a generator.

Each is also a baseline on its own (its top N is a list), and together they feed the ranker
(``pipelines.model.ranker``): each one's best items are the candidates, its scores and ranks are
features. Everything here is plain NumPy / SciPy on arrays aligned with ``user_ids`` and
``item_ids``; nothing is read or written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import cached_property

import numpy as np
import polars as pl
import scipy.sparse as sp

from pipelines.core.settings import RetrievalSettings
from pipelines.embed.encoder import vector_matrix
from pipelines.model.als import Factors, InteractionMatrix, build_matrix

POPULARITY = ("pop_1d", "pop_7d", "pop_30d", "pop_decayed")
PERSONAL = ("als", "itemknn", "recent_cooc", "sequence", "interest", "content")
GENERATORS = PERSONAL + POPULARITY
# The generators whose scores are a sparse product of the user's items and an item graph.
NEIGHBOURHOOD = ("itemknn", "recent_cooc", "sequence")
BASELINES = (*GENERATORS, "als_plain")
# Item statistics the ranker reads, in column order of ``Retrieval.item_stats``.
ITEM_STATS = ("n_1d", "n_7d", "n_30d", "pop_decayed", "trend", "n_users", "age_days",
              "mean_rating", "cold")
USER_STATS = ("n_events", "active_days", "days_since_last", "n_items", "has_interest")

Trainer = Callable[[InteractionMatrix], Factors]


@dataclass(frozen=True)
class InteractionFit:
    """What the generators learn from the interaction matrix alone, in its own rows and
    columns (the users and items with positive interactions): the night's costliest fits, and
    the same for any two nights whose matrix is the same (``jobs.fits`` keeps them)."""

    factors: Factors
    neighbors: sp.csr_matrix  # matrix items x matrix items: ``cooccurrence_neighbors``


# Fits an interaction matrix as of a day: ``fit_interactions``, or a cache of its results.
Fitter = Callable[[InteractionMatrix, date], InteractionFit]


def fit_interactions(data: InteractionMatrix, trainer: Trainer, neighbors: int,
                     ) -> InteractionFit:
    # Co-occurrence counts who took an item, not how much: the confidences are ALS's alone.
    return InteractionFit(trainer(data), cooccurrence_neighbors(_binary(data.matrix), neighbors))


@dataclass(frozen=True)
class AsOf:
    """What the models may know at the end of one day."""

    day: date
    interactions: pl.DataFrame  # user_id, item_id, confidence, last_ts (features as of day)
    items: pl.DataFrame  # item_id, n_users, popularity, trend, n_events_{1,7,30}d, first_seen
    users: pl.DataFrame  # user_id, n_events, active_days, days_since_last
    item_vectors: pl.DataFrame  # item_id, vector: every item that may be recommended
    interest: pl.DataFrame | None  # user_id, vector; None when no interest memory exists
    categories: pl.DataFrame  # item_id, category (the catalog as of day)


# The columns of each input the models read (a model version hashes only these).
INPUT_COLUMNS = {
    "interactions": ("user_id", "item_id", "confidence", "last_ts"),
    "items": ("item_id", "n_users", "popularity", "trend", "n_events_1d", "n_events_7d",
              "n_events_30d", "first_seen", "mean_rating"),
    "users": ("user_id", "n_events", "active_days", "days_since_last"),
    "item_vectors": ("item_id", "vector"),
    "interest": ("user_id", "vector"),
    "categories": ("item_id", "category"),
}


@dataclass
class Retrieval:
    """The fitted generators, every array aligned with ``user_ids`` x ``item_ids``."""

    user_ids: pl.Series  # users with interactions, sorted
    item_ids: pl.Series  # interacted and embedded catalog items, sorted
    seen: sp.csr_matrix  # users x items: 1 where the user interacted
    recent: sp.csr_matrix  # users x items: the last items, decay ** (position from the end)
    user_factors: np.ndarray
    item_factors: np.ndarray  # ALS factors; cold items mapped from their embedding
    als_factors: np.ndarray  # ALS's own factors (zeros for items it was not fitted on)
    neighbors: sp.csr_matrix  # items x items: cosine of co-occurrence, top neighbours kept
    follows: sp.csr_matrix  # items x items: share of i's successors that were j
    item_vectors: np.ndarray  # items x d, unit rows (zeros where there is no embedding)
    interest: np.ndarray  # users x d (zeros where there is no memory)
    content: np.ndarray  # users x d: the mean vector of the user's last items
    item_stats: np.ndarray  # items x ITEM_STATS
    user_stats: np.ndarray  # users x USER_STATS
    item_category: np.ndarray  # category code per item, -1 for none
    user_category: sp.csr_matrix  # users x categories: share of the user's items
    als_warm: np.ndarray  # bool per item: has ALS factors of its own

    @property
    def n_items(self) -> int:
        return self.item_ids.len()

    @cached_property
    def has_vector(self) -> np.ndarray:
        """bool per item: it has an embedding (a row of zeros is none). Computed once: every
        block of candidates reads it."""
        return np.abs(self.item_vectors).sum(axis=1) > 0

    def cold(self) -> np.ndarray:
        return self.item_stats[:, ITEM_STATS.index("cold")] > 0

    def popularity(self, name: str) -> np.ndarray:
        column = {"pop_1d": "n_1d", "pop_7d": "n_7d", "pop_30d": "n_30d",
                  "pop_decayed": "pop_decayed"}[name]
        return self.item_stats[:, ITEM_STATS.index(column)]

    def scores(self, name: str, rows: np.ndarray) -> np.ndarray:
        """One generator's scores, users ``rows`` x every item (float32)."""
        if name in POPULARITY:
            return np.broadcast_to(self.popularity(name).astype(np.float32),
                                   (len(rows), self.n_items)).copy()
        if name == "als":
            return self.user_factors[rows] @ self.item_factors.T
        if name == "als_plain":
            return np.where(self.als_warm, self.user_factors[rows] @ self.als_factors.T,
                            np.float32(-np.inf)).astype(np.float32)
        if name in NEIGHBOURHOOD:
            return _dense(self.sparse_scores(name, rows))
        if name == "interest":
            return self.interest[rows] @ self.item_vectors.T
        if name == "content":
            return self.content[rows] @ self.item_vectors.T
        raise KeyError(f"unknown generator {name!r}; generators are {', '.join(BASELINES)}")

    def sparse_scores(self, name: str, rows: np.ndarray) -> sp.csr_matrix:
        """A neighbourhood generator's scores, users ``rows`` x every item, as the sparse
        product it is (an item with no evidence for the user has no entry)."""
        if name == "itemknn":
            return sp.csr_matrix(self.seen[rows] @ self.neighbors, dtype=np.float32)
        if name == "recent_cooc":
            return sp.csr_matrix(self.recent[rows] @ self.neighbors, dtype=np.float32)
        if name == "sequence":
            return sp.csr_matrix(self.recent[rows] @ self.follows, dtype=np.float32)
        raise KeyError(f"{name!r} is not one of the sparse generators "
                       f"{', '.join(NEIGHBOURHOOD)}")

    def category_affinity(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The user's share of their items in each item's category (0 without one)."""
        cats = self.item_category[items]
        out = np.zeros(len(users), dtype=np.float32)
        has = cats >= 0
        if has.any() and self.user_category.shape[1]:
            out[has] = np.asarray(self.user_category[users[has], cats[has]]).ravel()
        return out


def _binary(matrix: sp.csr_matrix) -> sp.csr_matrix:
    return sp.csr_matrix((np.ones_like(matrix.data, dtype=np.float32), matrix.indices,
                          matrix.indptr), shape=matrix.shape)


def _reindexed(matrix: sp.csr_matrix, rows: np.ndarray, n: int) -> sp.csr_matrix:
    """A square matrix over the interaction matrix's items as one over all ``n`` items, item
    j at row and column ``rows[j]`` (increasing: each row's entries keep their order)."""
    counts = np.zeros(n, dtype=np.int64)
    counts[rows] = np.diff(matrix.indptr)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return sp.csr_matrix((matrix.data, rows[matrix.indices], indptr), shape=(n, n))


def _dense(matrix: sp.spmatrix | np.ndarray) -> np.ndarray:
    array = matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)
    return array.astype(np.float32, copy=False)


def _index(ids: pl.Series, name: str) -> pl.DataFrame:
    return pl.DataFrame({ids.name: ids, name: np.arange(ids.len(), dtype=np.int64)})


def fit_content_map(embeddings: np.ndarray, factors: np.ndarray, ridge: float) -> np.ndarray:
    """``W`` minimising ``|E W - V|^2 + ridge |W|^2`` (closed form, in float64)."""
    e = embeddings.astype(np.float64)
    gram = e.T @ e + ridge * np.eye(e.shape[1])
    return np.linalg.solve(gram, e.T @ factors.astype(np.float64)).astype(np.float32)


def top_neighbors(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Each row's ``k`` largest entries (ties by column), the rest dropped."""
    matrix = sp.csr_matrix(matrix)
    rows, cols, vals = [], [], []
    for r in range(matrix.shape[0]):
        start, stop = matrix.indptr[r], matrix.indptr[r + 1]
        if stop == start:
            continue
        c, v = matrix.indices[start:stop], matrix.data[start:stop]
        if len(v) > k:
            # Only the entries at or above the k-th largest value can be kept: a partition
            # finds it, and the sort is over those alone.
            at_least = v >= np.partition(v, len(v) - k)[len(v) - k]
            c, v = c[at_least], v[at_least]
        keep = np.lexsort((c, -v))[:k]
        rows.append(np.full(len(keep), r))
        cols.append(c[keep])
        vals.append(v[keep])
    if not rows:
        return sp.csr_matrix(matrix.shape, dtype=np.float32)
    return sp.csr_matrix((np.concatenate(vals).astype(np.float32),
                          (np.concatenate(rows), np.concatenate(cols))), shape=matrix.shape)


def cooccurrence_neighbors(matrix: sp.csr_matrix, k: int, block: int = 2048,
                           ) -> sp.csr_matrix:
    """Items x items cosine of the users x items ``matrix``'s columns, each item's
    ``k`` best neighbours, itself excluded; computed ``block`` items at a time so memory
    stays at block x items."""
    x = sp.csc_matrix(matrix, dtype=np.float64)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
    norms[norms == 0] = 1.0
    xt = sp.csr_matrix(x.T)
    # SciPy multiplies CSR by CSR: a CSC right operand would be converted on every block.
    x = sp.csr_matrix(x)
    inverse = 1 / norms
    parts = []
    for start in range(0, x.shape[1], block):
        stop = min(start + block, x.shape[1])
        dots = sp.csr_matrix(xt[start:stop] @ x)
        rows = np.repeat(np.arange(stop - start), np.diff(dots.indptr))
        # Scaled in place, in the order a product with the two diagonals would (the same
        # bits, without the copies).
        dots.data *= inverse[start:stop][rows]
        dots.data *= inverse[dots.indices]
        # An item is not its own neighbour: below every cosine (all positive), it is kept
        # only in a row of at most k entries, and dropped there.
        dots.data[dots.indices == rows + start] = -1.0
        top = top_neighbors(dots, k)
        top.data[top.data < 0] = 0
        top.eliminate_zeros()
        parts.append(top)
    return sp.vstack(parts, format="csr").astype(np.float32) if parts else \
        sp.csr_matrix((0, 0), dtype=np.float32)


def user_sequences(interactions: pl.DataFrame, user_ids: pl.Series,
                   item_ids: pl.Series) -> pl.DataFrame:
    """``_u, _i, pos_from_end``: each user's items in the order of their last interaction
    (ties by item id), the latest at position 0."""
    return (
        interactions.select("user_id", "item_id", "last_ts")
        .join(_index(user_ids.rename("user_id"), "_u"), on="user_id")
        .join(_index(item_ids.rename("item_id"), "_i"), on="item_id")
        .sort(["_u", "last_ts", "item_id"], descending=[False, True, True])
        .with_columns(pl.int_range(pl.len()).over("_u").alias("pos_from_end"))
        .select("_u", "_i", "pos_from_end")
    )


def transitions(sequences: pl.DataFrame, n_items: int, window: int, k: int) -> sp.csr_matrix:
    """Items x items: of the times item a was followed (within ``window`` steps) by an item,
    the share that was b; each row keeps its ``k`` most frequent successors."""
    steps = []
    for gap in range(1, window + 1):
        later = sequences.select("_u", pl.col("_i").alias("_next"),
                                 (pl.col("pos_from_end") + gap).alias("pos_from_end"))
        steps.append(sequences.join(later, on=["_u", "pos_from_end"]).select("_i", "_next"))
    pairs = pl.concat(steps) if steps else pl.DataFrame(schema={"_i": pl.Int64,
                                                               "_next": pl.Int64})
    counts = pairs.group_by("_i", "_next").len()
    matrix = sp.csr_matrix((counts["len"].to_numpy().astype(np.float64),
                            (counts["_i"].to_numpy(), counts["_next"].to_numpy())),
                           shape=(n_items, n_items))
    totals = np.asarray(matrix.sum(axis=1)).ravel()
    totals[totals == 0] = 1.0
    return top_neighbors(sp.diags(1 / totals) @ matrix, k)


def _aligned(frame: pl.DataFrame, key: str, ids: pl.Series, columns: list[str],
             ) -> pl.DataFrame:
    """``columns`` of ``frame`` in the order of ``ids`` (nulls where a key is missing)."""
    return (pl.DataFrame({key: ids})
            .join(frame.select(key, *columns).unique(key, keep="first"), on=key, how="left",
                  maintain_order="left"))


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (zero rows stay zero)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


def content_vectors(recent: sp.csr_matrix, item_vectors: np.ndarray) -> np.ndarray:
    """users x d: the unit mean of each user's last items' vectors, weighed as ``recent``. A
    model version does not store it: it is computed again from the two, bit for bit."""
    if not item_vectors.shape[1]:
        return np.zeros((recent.shape[0], 0), dtype=np.float32)
    return unit_rows(np.asarray(recent @ item_vectors, dtype=np.float32))


def fit_retrieval(asof: AsOf, cfg: RetrievalSettings, trainer: Trainer,
                  fitter: Fitter | None = None) -> Retrieval:
    """Every generator as of ``asof.day``; ``fitter``: where the interaction matrix's fits
    come from (default: fitted here by ``trainer``)."""
    data = build_matrix(asof.interactions)
    learnt = (fitter(data, asof.day) if fitter is not None
              else fit_interactions(data, trainer, cfg.neighbors))
    factors = learnt.factors
    vectors = asof.item_vectors.select("item_id", "vector").sort("item_id")
    item_ids = pl.concat([data.item_ids, vectors["item_id"]]).unique().sort()
    user_ids = data.user_ids
    n_users, n_items = user_ids.len(), item_ids.len()

    # Items: ALS rows, embeddings and statistics aligned with item_ids.
    cols = ["n_users", "popularity", "trend", "n_events_1d", "n_events_7d", "n_events_30d",
            "first_seen", "mean_rating"]
    items = _aligned(asof.items, "item_id", item_ids, cols)
    als_row = _aligned(_index(data.item_ids, "_als"), "item_id", item_ids, ["_als"])["_als"]
    emb_row = _aligned(vectors.with_row_index("_emb").with_columns(pl.col("_emb").cast(
        pl.Int64)), "item_id", item_ids, ["_emb"])["_emb"]
    dim = vectors.schema["vector"].size if vectors.height else 0
    emb = np.zeros((n_items, dim), dtype=np.float32)
    has_emb = emb_row.is_not_null().to_numpy()
    if dim:
        emb[has_emb] = vector_matrix(vectors)[emb_row.drop_nulls().to_numpy()]
    emb = unit_rows(emb)
    in_als = als_row.is_not_null().to_numpy()
    item_factors = np.zeros((n_items, factors.item.shape[1]), dtype=np.float32)
    item_factors[in_als] = factors.item[als_row.drop_nulls().to_numpy()]
    als_factors = item_factors.copy()
    n_users_of = items["n_users"].fill_null(0).to_numpy()
    cold = n_users_of < cfg.cold_min_users
    warm = in_als & has_emb & ~cold
    if warm.sum() >= 2 and dim:
        mapping = fit_content_map(emb[warm], item_factors[warm], cfg.ridge)
        item_factors[cold & has_emb] = emb[cold & has_emb] @ mapping
    # Days since the item's first event; 0 for an item nobody has touched yet.
    first = items["first_seen"].fill_null(asof.day)
    age_days = (pl.Series([asof.day] * n_items, dtype=pl.Date) - first).dt.total_days()
    item_stats = np.column_stack([
        items["n_events_1d"].fill_null(0).to_numpy(), items["n_events_7d"].fill_null(0)
        .to_numpy(), items["n_events_30d"].fill_null(0).to_numpy(),
        items["popularity"].fill_null(0).to_numpy(), items["trend"].fill_null(1).to_numpy(),
        n_users_of, age_days.to_numpy(), items["mean_rating"].fill_null(np.nan).to_numpy(),
        cold,
    ]).astype(np.float32)

    # Users: what they saw, their last items in order, their embeddings and statistics.
    to_model = np.flatnonzero(in_als)  # data.item_ids sit at these item rows, in order
    binary = _binary(data.matrix)
    seen = sp.csr_matrix((binary.data, to_model[binary.indices], binary.indptr),
                         shape=(n_users, n_items))
    sequences = user_sequences(asof.interactions, user_ids, item_ids)
    last = sequences.filter(pl.col("pos_from_end") < cfg.recent_items)
    recent = sp.csr_matrix(
        ((cfg.recent_decay ** last["pos_from_end"].to_numpy()).astype(np.float32),
         (last["_u"].to_numpy(), last["_i"].to_numpy())), shape=(n_users, n_items))
    interest = np.zeros((n_users, dim), dtype=np.float32)
    if asof.interest is not None and asof.interest.height and dim:
        idx = _index(user_ids.rename("user_id"), "_u").join(
            asof.interest.select("user_id", "vector"), on="user_id")
        interest[idx["_u"].to_numpy()] = vector_matrix(idx)
    interest = unit_rows(interest)
    content = content_vectors(recent, emb)
    users = _aligned(asof.users, "user_id", user_ids,
                     ["n_events", "active_days", "days_since_last"])
    user_stats = np.column_stack([
        users["n_events"].fill_null(0).to_numpy(), users["active_days"].fill_null(0)
        .to_numpy(), users["days_since_last"].fill_null(np.nan).to_numpy(),
        np.diff(seen.indptr), np.abs(interest).sum(axis=1) > 0,
    ]).astype(np.float32)

    # Categories: each item's code, each user's share of their items per category.
    cats = _aligned(asof.categories, "item_id", item_ids, ["category"])["category"]
    codes = cats.cast(pl.Categorical).to_physical().fill_null(-1).to_numpy().astype(np.int64)
    codes[cats.is_null().to_numpy()] = -1
    n_cats = int(codes.max()) + 1 if len(codes) and codes.max() >= 0 else 0
    user_category = sp.csr_matrix((n_users, n_cats), dtype=np.float32)
    if n_cats:
        coo = seen.tocoo()
        keep = codes[coo.col] >= 0
        user_category = sp.csr_matrix((coo.data[keep], (coo.row[keep], codes[coo.col[keep]])),
                                      shape=(n_users, n_cats))
        totals = np.asarray(user_category.sum(axis=1)).ravel()
        totals[totals == 0] = 1.0
        user_category = sp.csr_matrix(sp.diags(1 / totals) @ user_category, dtype=np.float32)

    return Retrieval(
        user_ids=user_ids, item_ids=item_ids, seen=seen, recent=recent,
        user_factors=factors.user, item_factors=item_factors, als_factors=als_factors,
        neighbors=_reindexed(learnt.neighbors, to_model, n_items),
        follows=transitions(sequences, n_items, cfg.sequence_window, cfg.neighbors),
        item_vectors=emb, interest=interest, content=content, item_stats=item_stats,
        user_stats=user_stats, item_category=codes, user_category=user_category,
        als_warm=in_als,
    )
