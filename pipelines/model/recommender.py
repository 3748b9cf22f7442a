"""The recommender a night trains: the fitted generators and the ranker over their candidates,
and the lists any of them gives (the ranker's, or one generator's as a baseline)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from pipelines.core.devices import cpu_threads
from pipelines.core.settings import RetrievalSettings, Settings
from pipelines.model.ranker import (
    Candidates,
    Ranker,
    TrainingSet,
    best_of_rows,
    candidates,
    fit_ranker,
    labelled,
    merge_sets,
)
from pipelines.model.retrieval import AsOf, Fitter, Retrieval, Trainer, fit_retrieval
from pipelines.serve.scoring import rank_scores, top_n

RANKER = "ranker"
# The ranker's lists with retrieval.exploration_slots of them given to cold items: a second
# candidate, which evaluation measures against the first.
EXPLORED = "ranker_explore"
CANDIDATES = (RANKER, EXPLORED)
# Bytes per (user, item) of a block at its peak: the exclusion mask (1), the dense float32
# scores of ALS, interest and content (12), and one of them masked and ranked by
# ``rank_scores`` (4 + 11). The selections now mask and rank cache-sized slices, and the mask
# that marks the candidates' pairs (1) comes after them, so this bound is loose; it is kept
# because the blocks' products, and so the lists' last bits, depend on the block size. The
# sparse generators and the candidates' features are per pair.
_BLOCK_BYTES = 1 + 3 * 4 + 4 + 11


# The generators whose scores are one dot product: (user vectors, item vectors, item mask).
DOT_PRODUCTS = {
    "als": lambda r: (r.user_factors, r.item_factors, None),
    "als_plain": lambda r: (r.user_factors, r.als_factors, r.als_warm),
    "interest": lambda r: (r.interest, r.item_vectors, None),
    "content": lambda r: (r.content, r.item_vectors, None),
}


@dataclass
class Model:
    retrieval: Retrieval
    ranker: Ranker | None  # None when there was too little to train it on
    training_days: int = 0  # of the splits it was given, the first ones the ranker used

    def candidates(self, cfg: RetrievalSettings) -> tuple[str, ...]:
        """The lists that compete with the baselines: none without a ranker, the explored
        variant only with exploration slots and content vectors to choose cold items by."""
        if self.ranker is None:
            return ()
        if cfg.exploration_slots and self.retrieval.content.shape[1]:
            return CANDIDATES
        return (RANKER,)


# Calls ``fn(shared, shard=i, shards=n)`` for every user shard i and returns the results in
# shard order (``pipelines.core.engines.shard_map``: in process, or on Dask workers).
ShardMap = Callable[[Callable[..., Any], Any], list]


def in_process(fn: Callable[..., Any], shared: Any) -> list:
    return [fn(shared, shard=0, shards=1)]


def fit_model(current: AsOf, splits: Iterable[tuple[AsOf, pl.DataFrame]], settings: Settings,
              trainer: Trainer, map_shards: ShardMap = in_process,
              current_fit: Callable[[], Retrieval] | None = None,
              fitted: Callable[[AsOf, Retrieval], None] | None = None,
              fitter: Fitter | None = None) -> Model:
    """The generators as of ``current.day`` and the ranker trained on ``splits`` (latest
    first): the inputs as of each training day with the new positive pairs of the days after
    it, as many days as it takes to reach ``ranker.max_train_rows`` (the rest are never
    read); each day's candidates are generated in user shards by ``map_shards``.

    ``current_fit``: how the generators as of ``current.day`` are had (default: fitted on
    ``current``; evaluate may have them from train); ``fitted``: called with each training
    day's inputs and generators once they are fitted (train keeps the ones evaluate needs);
    ``fitter``: where the interaction matrices' fits come from (``fit_retrieval``)."""
    cfg, rcfg = settings.retrieval, settings.ranker
    # The ranker can only weigh the interest memory if it had one on every day it learns from.
    use_interest = True

    def training_set(asof: AsOf, truth: pl.DataFrame) -> TrainingSet:
        ret = fit_retrieval(asof, cfg, trainer, fitter)
        if fitted is not None:
            fitted(asof, ret)
        shard = partial(labelled, truth=truth, cfg=rcfg, k=cfg.candidates,
                        new_item_days=cfg.new_item_days, use_interest=use_interest,
                        block=block_users(ret.n_items, settings.serve.memory_mb))
        return merge_sets(map_shards(shard, ret))

    taken: list[tuple[AsOf, pl.DataFrame]] = []
    sets: list[TrainingSet] = []
    days = iter(splits)
    # The generators as of the day fit beside the ranker's training: neither reads the
    # other, and each leaves cores idle at times (one-core steps, the last booster). BLAS is
    # held at one thread for the whole section: the fits' own limits, entered and left in
    # either order, would otherwise restore each other's.
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(1) as pool:
        retrieval = pool.submit(current_fit or partial(fit_retrieval, current, cfg, trainer,
                                                           fitter))
        # The cap is checked before the next day is read.
        while sum(len(s[1]) for s in sets) < rcfg.max_train_rows:
            if (day := next(days, None)) is None:
                break
            asof, truth = day
            if use_interest and asof.interest is None:
                # An earlier day without a memory (it started since): the later days,
                # generated with it, are generated again without it.
                use_interest = False
                sets = [training_set(a, t) for a, t in taken]
            taken.append((asof, truth))
            sets.append(training_set(asof, truth))
        ranker = fit_ranker(sets, rcfg, settings.model.seed,
                            use_interest=use_interest and bool(sets))
        return Model(retrieval=retrieval.result(), ranker=ranker, training_days=len(sets))


def block_users(n_items: int, memory_mb: float) -> int:
    """Users scored at once so that a block's score matrices fit ``memory_mb``."""
    return max(1, int(memory_mb * 2**20 // max(n_items * _BLOCK_BYTES, 1)))


def ranked(model: Model, name: str, rows: np.ndarray, n: int, cfg: RetrievalSettings,
           exclude: sp.csr_matrix | None = None, item_mask: np.ndarray | None = None,
           memory_mb: float = 512, device: str = "cpu", threads: int | None = None,
           ) -> tuple[np.ndarray, np.ndarray]:
    """Item rows (-1 padded) and scores of the best ``n`` per user row, best first, by model
    ``name``; ``exclude``: len(rows) x items, non-zero where an item must not be listed;
    ``item_mask``: True for items that may be listed at all; ``cfg``: the candidates the
    ranker was trained with. Dot-product models are scored by ``top_n`` on ``device``, the
    others in user blocks, ``threads`` of them at once (default: the cores this process may
    run on); a block's lists do not depend on the blocks beside it."""
    return ranked_lists(model, (name,), rows, n, cfg, exclude, item_mask, memory_mb, device,
                        threads)[name]


def ranked_lists(model: Model, names: tuple[str, ...], rows: np.ndarray, n: int,
                 cfg: RetrievalSettings, exclude: sp.csr_matrix | None = None,
                 item_mask: np.ndarray | None = None, memory_mb: float = 512,
                 device: str = "cpu", threads: int | None = None,
                 ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``ranked`` for each of ``names``, block by block: the candidate lists share one
    generation of candidates and one prediction."""
    ret = model.retrieval
    n = min(n, ret.n_items)
    out = {}
    for name in (m for m in names if m in DOT_PRODUCTS):
        users, items, mask = DOT_PRODUCTS[name](ret)
        if item_mask is not None:
            mask = item_mask if mask is None else mask & item_mask
        out[name] = top_n(users[rows], items, n, exclude=exclude, item_mask=mask,
                          memory_mb=memory_mb, device=device)
    blocked = tuple(m for m in names if m not in DOT_PRODUCTS)
    variants = tuple(m for m in blocked if m in CANDIDATES)
    if variants and model.ranker is None:
        raise ValueError(f"{variants[0]}: this model has no ranker (too little history to "
                         "train one); its lists are a generator's")
    for name in blocked:
        out[name] = (np.full((len(rows), n), -1, dtype=np.int64),
                     np.full((len(rows), n), -np.inf, dtype=np.float32))
    # The blocks do not depend on the thread count (a block's products do, in their last
    # bits, on its number of rows), so neither do the lists: ``memory_mb`` is per block in
    # flight.
    size = block_users(ret.n_items, memory_mb)
    starts = range(0, len(rows), size) if blocked else range(0)
    cores = threads or cpu_threads()
    threads = max(1, min(cores, len(starts)))  # blocks side by side
    # Each block's prediction gets the cores the blocks leave (one block: every core).
    predict_threads = 0 if threads == 1 else max(1, cores // threads)

    def score(start: int) -> None:
        at = slice(start, start + size)
        block = rows[at]
        excl = exclude[at] if exclude is not None else None
        if variants:
            # One core per block when blocks run side by side.
            lists = _ranker_block(model, block, n, cfg, excl, item_mask, variants,
                                  threads=predict_threads)
            for name in variants:
                out[name][0][at], out[name][1][at] = lists[name]
        for name in (m for m in blocked if m not in CANDIDATES):
            s = ret.scores(name, block)
            if excl is not None:
                coo = excl.tocoo()
                s[coo.row, coo.col] = -np.inf
            if item_mask is not None:
                s[:, ~item_mask] = -np.inf
            out[name][0][at], out[name][1][at] = rank_scores(s, n)

    # BLAS at one thread even for one block: OpenBLAS's threaded kernels sum in another order,
    # and a feature's last bit can move a row across a tree's split, so the lists would
    # depend on the machine's cores. Blocks run side by side instead (NumPy, SciPy's sparse
    # products and LightGBM release the GIL). A bar on a terminal only (disable=None): at
    # 50 K items the ranker lists ~600 users a second.
    with tqdm(total=len(starts), unit="block", desc=f"score {', '.join(blocked)}",
              leave=False, disable=None) as bar, threadpool_limits(limits=1, user_api="blas"):
        if threads == 1:
            for start in starts:
                score(start)
                bar.update()
            return out
        with ThreadPoolExecutor(threads) as pool:
            for _ in pool.map(score, starts):
                bar.update()
    return out


def explore(idx: np.ndarray, scores: np.ndarray, fresh: np.ndarray,
            window: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``fresh`` items (cold ones, best first, -1 padded) at evenly spaced places
    within its first ``window`` ones, unless already there; the items they displace move one
    place down and the list keeps its length. An inserted item takes the score of the place it
    takes, so scores stay non-increasing."""
    n = idx.shape[1]
    window = min(window, n)
    out_idx, out_scores = idx.copy(), scores.copy()
    for r in range(len(idx)):
        wanted = [int(i) for i in fresh[r] if i >= 0 and i not in idx[r, :window]]
        if not wanted:
            continue
        places = [(j + 1) * window // (len(fresh[r]) + 1) for j in range(len(wanted))]
        items, values = list(idx[r]), list(scores[r])
        for item, place in zip(wanted, places, strict=True):
            if item in items:  # lower in the list: it moves up
                at = items.index(item)
                del items[at], values[at]
            items.insert(place, item)
            # The displaced item's score; past the end of a short list, the last one's.
            finite = [v for v in values[:place + 1] if np.isfinite(v)]
            values.insert(place, values[place] if np.isfinite(values[place]) else
                          (finite[-1] if finite else np.float32(0)))
        out_idx[r], out_scores[r] = items[:n], values[:n]
    return out_idx, out_scores


def _ranker_block(model: Model, rows: np.ndarray, n: int, cfg: RetrievalSettings,
                  exclude: sp.csr_matrix | None, item_mask: np.ndarray | None,
                  variants: tuple[str, ...] = (RANKER,), threads: int = 0,
                  ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The ranker's order of each user's candidates; a user with fewer than ``n``
    candidates gets the most popular remaining items after them. ``variants``: RANKER, and
    EXPLORED for the same lists with ``cfg.exploration_slots`` cold items placed among the
    first ``cfg.exploration_window``; ``threads``: the ranker's prediction threads (0: every
    core)."""
    ret = model.retrieval
    cand = candidates(ret, rows, cfg.candidates, cfg.new_item_days, exclude=exclude,
                      item_mask=item_mask, use_interest=model.ranker.uses_interest)
    predicted = model.ranker.predict(cand.features, threads).astype(np.float32)
    # Explored lists are built to the window's depth and cut after, so a shorter list is the
    # start of a longer one: the slots sit at the same places whatever n is. The ranked list
    # at any depth is the start of a deeper one too, so both variants cut one list.
    depth = min(max(n, cfg.exploration_window), ret.n_items) if EXPLORED in variants else n
    best = best_of_rows(cand.local, cand.items, predicted, depth)
    idx = np.full((len(rows), depth), -1, dtype=np.int64)
    scores = np.full((len(rows), depth), -np.inf, dtype=np.float32)
    idx[best.local, best.ranks] = best.items
    # The candidates' pairs are sorted, so each chosen pair's prediction is found by search.
    scores[best.local, best.ranks] = predicted[np.searchsorted(
        cand.local * ret.n_items + cand.items, best.local * ret.n_items + best.items)]
    idx, scores = _fill(ret, cand, idx, scores, depth, exclude, item_mask)
    out = {RANKER: (idx[:, :n], scores[:, :n])} if RANKER in variants else {}
    if EXPLORED not in variants:
        return out
    if cfg.exploration_slots and ret.content.shape[1]:
        # The cold items most like the user's last ones: the ranker, trained where cold items
        # are rare, would rank them too low when many arrive at once.
        content = cand.content  # no longer needed by the candidates: masked in place
        content[:, ~ret.cold()] = -np.inf
        content[np.abs(ret.content[rows]).sum(axis=1) == 0] = -np.inf
        if exclude is not None:
            coo = exclude.tocoo()
            content[coo.row, coo.col] = -np.inf
        if item_mask is not None:
            content[:, ~item_mask] = -np.inf
        fresh, _ = rank_scores(content, cfg.exploration_slots)
        idx, scores = explore(idx, scores, fresh, cfg.exploration_window)
    out[EXPLORED] = (idx[:, :n], scores[:, :n])
    return out


def _fill(ret: Retrieval, cand: Candidates, idx: np.ndarray, scores: np.ndarray, n: int,
          exclude: sp.csr_matrix | None, item_mask: np.ndarray | None,
          ) -> tuple[np.ndarray, np.ndarray]:
    short = np.flatnonzero((idx < 0).any(axis=1))
    if not len(short):
        return idx, scores
    # Too few candidates: popularity fills the rest, below the ranked ones.
    fill = np.broadcast_to(ret.popularity("pop_decayed").astype(np.float32),
                           (len(short), ret.n_items)).copy()
    of_short = np.isin(cand.local, short)
    fill[np.searchsorted(short, cand.local[of_short]), cand.items[of_short]] = -np.inf
    if exclude is not None:
        coo = exclude[short].tocoo()
        fill[coo.row, coo.col] = -np.inf
    if item_mask is not None:
        fill[:, ~item_mask] = -np.inf
    extra, _ = rank_scores(fill, n)
    for j, r in enumerate(short):
        have = int((idx[r] >= 0).sum())
        add = extra[j][extra[j] >= 0][:n - have]
        floor = scores[r, have - 1] if have else np.float32(0)
        idx[r, have:have + len(add)] = add
        scores[r, have:have + len(add)] = floor - np.arange(1, len(add) + 1, dtype=np.float32)
    return idx, scores
