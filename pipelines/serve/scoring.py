"""Top-N per user from dot-product scores, in user blocks, excluding seen and unavailable items.

Two backends behind one function, with one tie rule (score descending, then lowest item index),
so a list does not depend on where it was computed:

- ``numpy``: BLAS matrix product and a partial sort on the host;
- ``torch``: matrix product and ``topk`` on ``device`` (CUDA, or CPU when asked for). Rows
  whose ties at the cut may reach past the ``topk`` window are finished by the NumPy rule.

Users are scored in blocks sized from a memory budget (``block_users_for``). torch is imported
only by the torch backend.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    import torch

BACKENDS = ("auto", "numpy", "torch")

# topk returns this many candidates beyond n: a row needs the exact host rule only when more
# than TOPK_MARGIN items tie with its n-th best score.
TOPK_MARGIN = 16

# On the CPU the selection runs over slices of a block's scores of about this size, even when
# the budget allows more: it reads the scores several times, and a slice that stays in cache is
# read faster (at 10k items, 209-user slices scored 1.7x faster than the 4626 that 512 MB would
# allow).
HOST_BLOCK_MIB = 8
# ... while the block's matrix product spans at least this many users (as the budget allows):
# a product over few users repacks the item matrix for little work (at 50k items and 384
# dimensions, 41 users per product ran at 28 GFLOPS a core, 256 at 63).
PRODUCT_ROWS = 256

# Bytes of a block's working set per (user, item), per (user, selected slot) and per excluded
# (user, item) pair. The inputs and the result arrays are not part of it.
#
# numpy: the float32 score (4), plus the larger of the selection's two phases: the copy that is
# partitioned (4), then the "chosen" and "tied" masks (1 + 1), the running count of ties
# (int32, 4) and its comparison with the room left (1). A block larger than HOST_BLOCK_MIB
# selects in slices, so it needs less than this: the bound stays safe, not tight.
_ITEM_BYTES = {"numpy": 4 + max(4, 1 + 1 + 4 + 1),
               # torch: the score block (4) and, in the worst case (every row tied at the cut),
               # the rows gathered for the host (4) going through the NumPy selection (7). On
               # CUDA the device holds 4 + 4 of these and the host 4 + 7, so each side fits.
               "torch": 4 + 4 + 7}
# numpy: the chosen flat positions and their columns (8 + 8), the candidates' scores (4), the
# sort order (8), the sorted indices and scores (8 + 4), the validity mask and the padded
# copies (1 + 8 + 4).
# torch: per slot of the topk window, on the device: topk's values and indices (4 + 8), the sort
# by index and its positions (8 + 8), the values gathered (4), the sort by score and its order
# (4 + 8), the indices gathered (8); on the host, the first n and the padded copy (12 + 8 + 1).
_SLOT_BYTES = {"numpy": 53, "torch": 73}
# The block's (row, column) pairs as int64 on the host (16) and, for torch, on the device (16).
_EXCLUDE_BYTES = {"numpy": 16, "torch": 32}


def block_users_for(n_items: int, memory_mb: float, *, n: int = 100,
                    exclude_per_user: float = 0.0, backend: str = "numpy") -> int:
    """How many users one block may hold so that its scores and the selection's temporaries
    fit in ``memory_mb`` (at least 1).

    ``exclude_per_user``: the mean number of excluded items per user; ``backend``: ``numpy``
    or ``torch`` (for torch the budget covers the device block and the host work together,
    the worst case on a CPU device).
    """
    if backend not in ("numpy", "torch"):
        raise ValueError(f"backend must be 'numpy' or 'torch' here, not {backend!r}")
    slots = min(n + TOPK_MARGIN, n_items) if backend == "torch" else min(n, n_items)
    per_user = (n_items * _ITEM_BYTES[backend] + slots * _SLOT_BYTES[backend]
                + exclude_per_user * _EXCLUDE_BYTES[backend])
    return max(1, int(memory_mb * 2**20 // max(per_user, 1)))


def default_block_users(n_items: int, n: int, *, memory_mb: float = 512,
                        exclude_per_user: float = 0.0, backend: str = "numpy",
                        device: str = "cpu", threads: int = 1) -> int:
    """The block ``top_n`` uses when given none: the blocks in flight at once share
    ``memory_mb``, and on the CPU a block holds ``HOST_BLOCK_MIB`` of scores or
    ``PRODUCT_ROWS`` users, whichever is more (its selection runs in cache-sized slices)."""
    block = block_users_for(n_items, memory_mb / threads, n=n,
                            exclude_per_user=exclude_per_user, backend=backend)
    if device == "cpu":
        block = min(block, max(cache_rows(n_items), PRODUCT_ROWS))
    return block


def cache_rows(n_items: int) -> int:
    """Rows of a float32 block over ``n_items`` columns that fit in ``HOST_BLOCK_MIB``."""
    return max(1, HOST_BLOCK_MIB * 2**20 // (4 * max(n_items, 1)))


def resolve_backend(backend: str, device: str) -> tuple[str, str]:
    """(backend, device) to run on: ``auto`` means torch on CUDA, NumPy otherwise.

    ``device="auto"`` asks torch whether a GPU is there (and so imports it); ``cpu`` does not.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if device == "auto":
        from pipelines.core.devices import pick_device

        device = pick_device("auto")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', not {device!r}")
    if backend == "auto":
        backend = "numpy" if device == "cpu" else "torch"
    if backend == "numpy" and device != "cpu":
        raise ValueError(f"the numpy backend runs on the CPU; use backend='torch' for {device}")
    return backend, device


def top_n(user_vecs: np.ndarray, item_vecs: np.ndarray, n: int,
          exclude: sp.csr_matrix | None = None, item_mask: np.ndarray | None = None,
          block_users: int | None = None, memory_mb: float = 512, device: str = "cpu",
          backend: str = "auto", threads: int | None = None,
          ) -> tuple[np.ndarray, np.ndarray]:
    """Indices (int64) and scores (float32) of the best ``n`` items per user, best first.

    ``exclude``: users × items, non-zero where an item must not be recommended to that user;
    ``item_mask``: True for items that may be recommended at all. Ties are broken by item
    index so the result is deterministic, on either backend. Rows with fewer eligible items are
    padded with -1 (score -inf).

    ``block_users``: users per block; by default as many as fit in ``memory_mb`` (shared by the
    blocks in flight, see ``block_users_for``), and on the CPU at most ``default_block_users``'
    cap. ``device``/``backend``: see ``resolve_backend``. ``threads``: blocks the numpy
    backend scores at once (default: the cores this process may run on); torch uses its own.
    """
    backend, device = resolve_backend(backend, device)
    items = np.ascontiguousarray(item_vecs, dtype=np.float32)
    n_users, n_items = user_vecs.shape[0], items.shape[0]
    if user_vecs.ndim != 2 or items.ndim != 2 or user_vecs.shape[1] != items.shape[1]:
        raise ValueError(f"user vectors {user_vecs.shape} and item vectors {items.shape} "
                         "must be 2-D with the same number of columns")
    if n < 0:
        raise ValueError(f"n must be at least 0, not {n}")
    if exclude is not None:
        if exclude.shape != (n_users, n_items):
            raise ValueError(f"exclude is {exclude.shape}, expected {(n_users, n_items)}")
        exclude = sp.csr_matrix(exclude)
    if item_mask is not None and np.shape(item_mask) != (n_items,):
        raise ValueError(f"item_mask has shape {np.shape(item_mask)}, expected {(n_items,)}")
    if threads is None and backend == "torch":
        threads = 1  # torch spreads one block over its own threads
    elif threads is None:
        from pipelines.core.devices import cpu_threads

        threads = cpu_threads()
    if threads < 1:
        raise ValueError(f"threads must be at least 1, not {threads}")
    n = min(n, n_items)
    idx_out = np.full((n_users, n), -1, dtype=np.int64)
    score_out = np.full((n_users, n), -np.inf, dtype=np.float32)
    if n == 0 or n_users == 0:
        return idx_out, score_out
    if block_users is None:
        block_users = default_block_users(
            n_items, n, memory_mb=memory_mb, backend=backend, device=device, threads=threads,
            exclude_per_user=exclude.nnz / n_users if exclude is not None else 0.0)
    if block_users < 1:
        raise ValueError(f"block_users must be at least 1, not {block_users}")
    blocked = None if item_mask is None else ~np.asarray(item_mask, dtype=bool)
    if blocked is not None and not blocked.any():
        blocked = None
    if backend == "numpy":
        _top_n_numpy(user_vecs, items, n, exclude, blocked, block_users, threads,
                     idx_out, score_out)
    else:
        _top_n_torch(user_vecs, items, n, exclude, blocked, block_users, device,
                     idx_out, score_out)
    return idx_out, score_out


def _top_n_numpy(user_vecs: np.ndarray, items: np.ndarray, n: int,
                 exclude: sp.csr_matrix | None, blocked: np.ndarray | None, block_users: int,
                 threads: int, idx_out: np.ndarray, score_out: np.ndarray) -> None:
    n_users = user_vecs.shape[0]

    def score(start: int) -> None:
        stop = min(start + block_users, n_users)
        scores = np.asarray(user_vecs[start:stop], dtype=np.float32) @ items.T
        if blocked is not None:
            scores[:, blocked] = -np.inf
        if exclude is not None:
            scores[_block_pairs(exclude, start, stop)] = -np.inf
        idx_out[start:stop], score_out[start:stop] = rank_scores(scores, n)

    starts = range(0, n_users, block_users)
    if threads == 1 or len(starts) == 1:
        for start in starts:
            score(start)
        return
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    # NumPy releases the GIL in the product, the partition and the masks, so blocks score in
    # parallel; BLAS threads inside each block would only oversubscribe the cores.
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
        list(pool.map(score, starts))


def _top_n_torch(user_vecs: np.ndarray, items: np.ndarray, n: int,
                 exclude: sp.csr_matrix | None, blocked: np.ndarray | None, block_users: int,
                 device: str, idx_out: np.ndarray, score_out: np.ndarray) -> None:
    import torch

    n_items = items.shape[0]
    k = min(n + TOPK_MARGIN, n_items)
    with torch.inference_mode():
        items_t = _tensor(items, device)  # once per call; on the CPU it shares the memory
        blocked_t = None if blocked is None else _tensor(blocked, device)
        for start in range(0, user_vecs.shape[0], block_users):
            stop = min(start + block_users, user_vecs.shape[0])
            users = np.ascontiguousarray(user_vecs[start:stop], dtype=np.float32)
            scores = _tensor(users, device) @ items_t.T
            if blocked_t is not None:
                scores.masked_fill_(blocked_t, -np.inf)
            if exclude is not None:
                rows, cols = _block_pairs(exclude, start, stop)
                scores[_tensor(rows, device), _tensor(cols, device)] = -np.inf
            vals, cand = _window(scores, k)
            best, best_scores = cand[:, :n].cpu().numpy(), vals[:, :n].cpu().numpy()
            idx_out[start:stop] = np.where(np.isfinite(best_scores), best, -1)
            score_out[start:stop] = best_scores
            if k == n_items:
                continue
            # The window holds every item scoring above its last value, so it decides the
            # list unless the n-th best score equals that last value: then items outside the
            # window, with lower indices, may tie. Padding (-inf) needs no such check.
            nth, last = vals[:, n - 1], vals[:, k - 1]
            redo = torch.nonzero(torch.isfinite(nth) & (nth == last)).flatten()
            if len(redo):
                exact = scores[redo].cpu().numpy()
                redo_rows = start + redo.cpu().numpy()
                idx_out[redo_rows], score_out[redo_rows] = _rank_rows(exact, n)


def _window(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's ``k`` best (values, item indices), ordered by the tie rule, on the device.

    topk's order among equal values is unspecified; sorting its window by item index and then
    stably by score gives score descending, then lowest index, as the NumPy rule does.
    """
    import torch

    vals, cand = torch.topk(scores, k, dim=1, sorted=False)
    cand, by_index = torch.sort(cand, dim=1)
    vals = vals.gather(1, by_index)
    vals, by_score = torch.sort(vals, dim=1, descending=True, stable=True)
    return vals, cand.gather(1, by_score)


def _tensor(array: np.ndarray, device: str) -> torch.Tensor:
    """A torch view of ``array`` on ``device``; never written to, so read-only arrays are fine."""
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array).to(device)


def _block_pairs(exclude: sp.csr_matrix, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """(row within the block, item) of the excluded pairs of users ``start:stop``."""
    indptr = exclude.indptr[start:stop + 1]
    rows = np.repeat(np.arange(stop - start, dtype=np.int64), np.diff(indptr))
    cols = exclude.indices[indptr[0]:indptr[-1]].astype(np.int64)
    return rows, cols


def rank_scores(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``n`` of each row of a score block (-inf: not eligible), best first, ties by
    lowest index, padded with -1 / -inf: the rule ``top_n`` ranks by."""
    n = min(n, scores.shape[1])
    if n == 0:
        return (np.zeros((scores.shape[0], 0), dtype=np.int64),
                np.zeros((scores.shape[0], 0), dtype=np.float32))
    scores = np.asarray(scores, dtype=np.float32)
    step = cache_rows(scores.shape[1])
    if len(scores) <= step:
        return _rank_rows(scores, n)
    # Row by row the result is the same; the selection's copies of a cache-sized slice are
    # read several times faster than those of a large block.
    idx = np.empty((len(scores), n), dtype=np.int64)
    best = np.empty((len(scores), n), dtype=np.float32)
    for start in range(0, len(scores), step):
        idx[start:start + step], best[start:start + step] = _rank_rows(
            scores[start:start + step], n)
    return idx, best


def _rank_rows(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``n`` of each row of a score block, ordered and padded (the NumPy rule)."""
    part = _select_n(scores, n)
    return _order(part, np.take_along_axis(scores, part, axis=1))


def _order(idx: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidates sorted by score descending, then item index ascending; -inf becomes -1."""
    order = np.lexsort((idx, -scores), axis=1)
    best = np.take_along_axis(idx, order, axis=1).astype(np.int64, copy=False)
    best_scores = np.take_along_axis(scores, order, axis=1).astype(np.float32, copy=False)
    valid = np.isfinite(best_scores)
    return np.where(valid, best, -1), np.where(valid, best_scores, np.float32(-np.inf))


def _select_n(scores: np.ndarray, n: int) -> np.ndarray:
    """Per row, the indices of the ``n`` best scores; ties at the cut go to the lowest indices.

    ``argpartition`` alone keeps an arbitrary subset of the items tied at the cut (common:
    items without interactions all score 0), which would make lists depend on the platform.
    Partitioning the values (5x faster than ``argpartition``) gives each row's n-th best score;
    the items at or above it are the list unless more than n of them tie at the cut.
    """
    n_rows, n_items = scores.shape
    threshold = _nth_best(scores, n)
    chosen = scores >= threshold
    # Every row holds at least n chosen items, so a total above n per row means some row has
    # more items tied at the cut than there is room for: those keep the lowest indices.
    if np.count_nonzero(chosen) > n_rows * n:
        tied = scores == threshold
        room = n - (np.count_nonzero(chosen, axis=1, keepdims=True)
                    - np.count_nonzero(tied, axis=1, keepdims=True))
        # In place: from a bool input cumsum would allocate an int32 copy besides its output.
        running = tied.astype(np.int32)
        np.cumsum(running, axis=1, out=running)
        drop = running > room
        del running
        drop &= tied
        chosen &= ~drop
    # flatnonzero is several times faster than a 2-D nonzero; each row now holds exactly n.
    flat = np.flatnonzero(chosen).reshape(n_rows, n)
    return flat - np.arange(n_rows)[:, None] * n_items


# Columns per segment whose maxima bound each row's n-th best score from below.
_SEGMENT = 64


def _nth_best(scores: np.ndarray, n: int) -> np.ndarray:
    """Each row's n-th best score (rows x 1). The n best maxima of ``_SEGMENT``-column
    segments are n distinct items, so the n-th best score is at least the n-th best maximum:
    only the few scores above that bound are sorted. With too few segments, or too many
    scores at the bound (ties), a partitioned copy of the block gives it instead."""
    n_rows, n_items = scores.shape
    starts = np.arange(0, n_items, _SEGMENT)
    if len(starts) >= 4 * n:
        maxima = np.maximum.reduceat(scores, starts, axis=1)
        m = maxima.shape[1]
        keep = scores >= np.partition(maxima, m - n, axis=1)[:, m - n:m - n + 1]
        counts = np.count_nonzero(keep, axis=1)
        # The sort's arrays stay within the budget; a row with fewer than n kept (only with
        # NaN scores) takes the partition, as any row did before.
        if counts.sum() <= scores.size // 8 and (counts >= n).all():
            values = scores[keep]
            order = np.lexsort((-values, np.repeat(np.arange(n_rows), counts)))
            first = np.cumsum(counts) - counts
            return values[order][first + n - 1][:, None]
    part = scores.copy()
    part.partition(n_items - n, axis=1)
    return part[:, n_items - n:n_items - n + 1].copy()


def csr_from_pairs(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    data = np.ones(len(rows), dtype=np.int8)
    return sp.csr_matrix((data, (rows, cols)), shape=shape)
