"""Synthetic runs to publish in the warehouse tests, and a command that publishes one (the
recovery tests kill it with SIGKILL at a failpoint):

    python -m tests.support.warehouse_batches URL YYYY-MM-DD SEED [USERS]
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime

import numpy as np
import polars as pl

from pipelines.warehouse import PublishRules, RunBatch, open_warehouse

N_ITEMS = 50
TOP_N = 10
RULES = PublishRules(top_n=TOP_N, min_user_coverage=0.5, retention_days=0)


def make_batch(ds: date, seed: int = 0, n_users: int = 20, top_n: int = TOP_N) -> RunBatch:
    """Lists that pass the audit: each user has seen 5 items and gets ``top_n`` others, with
    scores falling by rank; the catalog has every item, one of them unavailable and unused."""
    rng = np.random.default_rng(seed)
    items = [f"i{j:03d}" for j in range(N_ITEMS)]
    recs, seen = [], []
    for u in range(n_users):
        order = rng.permutation(N_ITEMS - 1)  # item N_ITEMS-1 is the unavailable one
        seen += [(f"u{u:04d}", items[j]) for j in order[:5]]
        scores = np.sort(rng.random(top_n))[::-1]
        recs += [(f"u{u:04d}", r + 1, items[j], float(s), f"reason {seed}")
                 for r, (j, s) in enumerate(zip(order[5:5 + top_n], scores, strict=True))]
    recommendations = pl.DataFrame(recs, orient="row", schema={
        "user_id": pl.String, "rank": pl.Int32, "item_id": pl.String, "score": pl.Float64,
        "reason": pl.String})
    return RunBatch(
        ds=ds, run_id=f"run-{ds}-{seed}", model_version=f"m{seed}:ranker",
        recommendations=recommendations,
        popular=pl.DataFrame({"rank": pl.Series(range(1, 6), dtype=pl.Int32),
                              "item_id": items[:5], "score": [5.0, 4, 3, 2, 1]}),
        metrics=pl.DataFrame({"model": ["ranker", "pop_7d", "ranker"],
                              "metric": ["ndcg", "ndcg", "lift_ndcg"],
                              "k": pl.Series([10, 10, 10], dtype=pl.Int32),
                              "value": [0.2 + seed / 100, 0.1, 2 + seed / 10]}),
        catalog=pl.DataFrame({"item_id": items, "title": [f"Item {j}" for j in range(N_ITEMS)],
                              "category": [f"c{j % 4}" for j in range(N_ITEMS)],
                              "available": [True] * (N_ITEMS - 1) + [False]}),
        seen=pl.DataFrame(seen, orient="row", schema={"user_id": pl.String,
                                                      "item_id": pl.String}),
        active_users=n_users,
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        finished_at=datetime(2026, 1, 1, 0, 5, tzinfo=UTC),
        gate_verdict="passed",
        gate_reason=f"ranker above every baseline ({seed})",
        # Items 0-4 have their three neighbours among the available ones.
        similar_items=pl.DataFrame(
            [(items[i], r + 1, items[(i + r + 1) % (N_ITEMS - 1)], 0.9 - r / 10,
              "liked by the same users", f"m{seed}") for i in range(5) for r in range(3)],
            orient="row", schema={"item_id": pl.String, "rank": pl.Int32,
                                  "similar_item_id": pl.String, "score": pl.Float64,
                                  "reason": pl.String, "model_version": pl.String}),
    )


if __name__ == "__main__":
    url, ds, seed = sys.argv[1], date.fromisoformat(sys.argv[2]), int(sys.argv[3])
    users = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    open_warehouse(url).publish(make_batch(ds, seed, users), RULES)
