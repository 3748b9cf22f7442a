"""All-user top-N scoring on the factors of one ALS fit: the pipeline's ``top_n`` against
implicit's batch ``recommend`` (the peer) and against a floor, in the same run on the same
factors.

The floor is the matrix product and an ``argpartition`` per block with nothing else: no
excluded items, no order within the list, no tie rule. No top-N can be much faster.
"""

from __future__ import annotations

import os
import time

import numpy as np
import scipy.sparse as sp

from pipelines.serve.scoring import default_block_users, top_n


def synthetic_interactions(n_users: int, n_items: int, per_user: int = 50,
                           seed: int = 0) -> sp.csr_matrix:
    """users × items counts: ``per_user`` draws per user from a power-law item popularity
    (the item of popularity rank r drawn with probability ∝ r^-0.8), repeats summed."""
    rng = np.random.default_rng(seed)
    weights = np.arange(1, n_items + 1, dtype=np.float64) ** -0.8
    # Popular items are spread over the index range, as ids are in a real catalog.
    items = rng.permutation(n_items)[rng.choice(n_items, size=n_users * per_user,
                                                p=weights / weights.sum())]
    users = np.repeat(np.arange(n_users), per_user)
    matrix = sp.csr_matrix((np.ones(len(items), dtype=np.float32), (users, items)),
                           shape=(n_users, n_items))
    matrix.sum_duplicates()
    return matrix


def overlap(ours: np.ndarray, theirs: np.ndarray) -> float:
    """Mean share of each row of ``theirs`` (ignoring -1) that ``ours`` holds too."""
    both = np.sort(np.concatenate([ours, theirs], axis=1), axis=1)
    shared = ((both[:, 1:] == both[:, :-1]) & (both[:, 1:] >= 0)).sum(axis=1)
    return float(np.mean(shared / np.maximum((theirs >= 0).sum(axis=1), 1)))


def floor_top_n(user_vecs: np.ndarray, item_vecs: np.ndarray, n: int, block_users: int,
                threads: int) -> np.ndarray:
    """The n best items per user in no particular order: product and argpartition per block,
    blocks spread over ``threads`` like ``top_n``'s."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    n_users, n_items = user_vecs.shape[0], item_vecs.shape[0]
    out = np.empty((n_users, n), dtype=np.int64)

    def block(start: int) -> None:
        scores = user_vecs[start:start + block_users] @ item_vecs.T
        out[start:start + block_users] = np.argpartition(scores, n_items - n, axis=1)[
            :, n_items - n:]

    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
        list(pool.map(block, range(0, n_users, block_users)))
    return out


def floor_top_n_torch(user_vecs: np.ndarray, item_vecs: np.ndarray, n: int, block_users: int,
                      device: str) -> np.ndarray:
    """The GPU floor: product and ``topk`` per block on ``device``, nothing excluded, the
    indices brought back to the host as ``top_n`` brings its own."""
    import torch

    items = torch.from_numpy(item_vecs).to(device)
    users = torch.from_numpy(user_vecs).to(device)
    out = np.empty((user_vecs.shape[0], n), dtype=np.int64)
    for start in range(0, user_vecs.shape[0], block_users):
        scores = users[start:start + block_users] @ items.T
        out[start:start + block_users] = torch.topk(scores, n, dim=1).indices.cpu().numpy()
    return out


def bench_scoring(n_users: int, n_items: int, factors: int, n: int = 100, repeat: int = 3,
                  device: str = "cpu") -> dict:
    """Users/s of each path on one seeded data set, the ratios between them, and how far the
    pipeline's lists agree with implicit's.

    Returns ``users_per_s`` per path; ``this_over_implicit`` and ``floor_over_this`` (ratios of
    users/s, so above 1 means the first is faster); ``overlap`` (per path, the mean share of
    implicit's list it holds: 1.0 but for ties and float rounding at the cut); and ``rows``,
    the table ``benchmarks.bench`` prints. ``device``: ``cuda`` (or ``auto`` finding one) also
    times ``top_n`` on the GPU and fits and recommends with implicit's GPU model where this
    build of implicit has CUDA.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from implicit.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    from benchmarks.util import PeakMemory, median_seconds
    from pipelines.core.devices import cpu_threads, implicit_has_cuda, pick_device

    device = pick_device(device)  # auto: CUDA when torch sees a GPU; cuda without one fails
    user_items = synthetic_interactions(n_users, n_items)
    use_gpu = device != "cpu" and implicit_has_cuda()
    # A fresh model per fit: implicit crashes when one model is refitted on another shape.
    with threadpool_limits(limits=1, user_api="blas"):
        model = AlternatingLeastSquares(factors=factors, iterations=3, random_state=7,
                                        use_gpu=use_gpu)
        t0 = time.perf_counter()
        model.fit(user_items, show_progress=False)
        fit_s = time.perf_counter() - t0
    user_f, item_f = model.user_factors, model.item_factors
    if use_gpu:
        user_f, item_f = user_f.to_numpy(), item_f.to_numpy()
    user_f = np.ascontiguousarray(user_f, dtype=np.float32)
    item_f = np.ascontiguousarray(item_f, dtype=np.float32)
    userids = np.arange(n_users)
    threads = cpu_threads()
    block = default_block_users(n_items, n, exclude_per_user=user_items.nnz / n_users,
                                threads=threads)

    def implicit_lists() -> np.ndarray:
        # All users in order, so user_items is user_items[userids] without the copy.
        with threadpool_limits(limits=1, user_api="blas"):
            return model.recommend(userids, user_items, N=n, filter_already_liked_items=True)[0]

    paths = {"implicit": (f"implicit {'GPU' if use_gpu else 'CPU'} batch recommend (peer)",
                          implicit_lists),
             "this": (f"top_n numpy, {threads} threads x blocks of {block} users",
                      lambda: top_n(user_f, item_f, n, exclude=user_items)[0]),
             "this_torch_cpu": ("top_n torch on the CPU",
                                lambda: top_n(user_f, item_f, n, exclude=user_items,
                                              backend="torch")[0])}
    if device != "cpu":
        paths["this_cuda"] = (f"top_n torch on {device}",
                              lambda: top_n(user_f, item_f, n, exclude=user_items,
                                            device=device)[0])
    paths["floor"] = ("floor: product + argpartition, no exclusion, no order",
                      lambda: floor_top_n(user_f, item_f, n, block, threads))
    if device != "cpu":
        gpu_block = default_block_users(n_items, n, exclude_per_user=user_items.nnz / n_users,
                                        backend="torch", device=device)
        paths["floor_cuda"] = (f"floor on {device}: product + topk, no exclusion",
                               lambda: floor_top_n_torch(user_f, item_f, n, gpu_block, device))

    seconds, peaks, lists = {}, {}, {}
    for name, (_, run) in paths.items():
        lists[name] = run()  # warm-up (imports, kernels, the GPU's context) and the result
        with PeakMemory() as memory:
            seconds[name] = median_seconds(run, repeat)
        peaks[name] = memory.mib
    users_per_s = {name: n_users / s for name, s in seconds.items()}
    agree = {name: overlap(lists[name], lists["implicit"]) for name in paths
             if name.startswith("this")}
    # A GPU path is held to the GPU's floor, a CPU path to the CPU's.
    floor_of = {name: seconds["floor_cuda" if name.endswith("cuda") else "floor"]
                for name in paths if name.startswith("this")}
    rows = [{"step": f"score/{device}", "what": what, "rows": n_users,
             "seconds": seconds[name], "rows_per_s": users_per_s[name],
             "ratio_to_peer": seconds[name] / seconds["implicit"],
             "share_of_floor": floor_of[name] / seconds[name] if name in floor_of else None,
             "overlap_with_peer": agree.get(name), "peak_mib": peaks[name]}
            for name, (what, _) in paths.items()]
    return {"n_users": n_users, "n_items": n_items, "factors": factors, "n": n,
            "interactions": int(user_items.nnz), "device": device, "threads": threads,
            "block_users": block, "fit_seconds": fit_s, "users_per_s": users_per_s,
            "this_over_implicit": users_per_s["this"] / users_per_s["implicit"],
            "floor_over_this": users_per_s["floor"] / users_per_s["this"],
            "overlap": agree, "rows": rows}


def main() -> None:
    """``python -m benchmarks.score``: this benchmark alone, where only NumPy, SciPy, implicit
    and (for a GPU) torch are installed."""
    import argparse
    import platform

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args()
    result = bench_scoring(args.users, args.items, args.factors, repeat=args.repeat,
                           device=args.device)
    gpu = ""
    if result["device"] != "cpu":
        import torch

        gpu = f", {torch.cuda.get_device_name()}"
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores{gpu}; "
          f"{args.users} users x {args.items} items, {result['interactions']} interactions, "
          f"{args.factors} factors, top {result['n']}, median of {args.repeat}")
    print(f"{'path':<58} {'seconds':>8} {'users/s':>10} {'vs peer':>8} {'overlap':>8}")
    for row in result["rows"]:
        agree = row["overlap_with_peer"]
        print(f"{row['what']:<58} {row['seconds']:>8.3f} {row['rows_per_s']:>10.0f} "
              f"{row['ratio_to_peer']:>8.3f} {'' if agree is None else f'{agree:.4f}':>8}")


if __name__ == "__main__":
    main()
