"""The ranker's cost: its lists for every user of a synthetic night against the cheapest
personal baseline's (ALS, one matrix product and a partial sort per block), and against the
floor of scoring every generator for those users without ranking anything."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

import numpy as np

from benchmarks.nights import synthetic_workspace
from benchmarks.util import median_seconds
from jobs.context import RunContext


def bench_rank(n_events: int, days: int, repeat: int, top_n: int = 100) -> list[dict]:
    from jobs.tasks.train import day_model, load
    from pipelines.model.ranker import candidates
    from pipelines.model.recommender import ranked
    from pipelines.model.retrieval import GENERATORS

    with tempfile.TemporaryDirectory() as tmp:
        settings, last = synthetic_workspace(Path(tmp) / "ws", n_events, days)
        ctx = RunContext(settings, last - timedelta(days=1), "bench")
        model = load(ctx, day_model(ctx))
    ret = model.retrieval
    rows = np.arange(ret.user_ids.len())
    exclude = ret.seen[rows]
    cfg, memory = settings.retrieval, settings.serve.memory_mb

    def lists(name: str):
        return ranked(model, name, rows, top_n, cfg, exclude=exclude, memory_mb=memory)

    def generators():
        for start in range(0, len(rows), 512):
            for g in GENERATORS:
                ret.scores(g, rows[start:start + 512])

    out = []
    common = {"users": len(rows), "items": ret.n_items, "events": n_events}
    als = median_seconds(lambda: lists("als"), repeat)
    floor = median_seconds(generators, repeat)
    if model.ranker is not None:
        # Compiled first, as a night's precompute has it after its first blocks.
        model.ranker.compile(candidates(ret, rows[:64], cfg.candidates, cfg.new_item_days,
                                        exclude=exclude[:64]).features)
        ranker = median_seconds(lambda: lists("ranker"), repeat)
        out.append({"step": "rank", "what": "ranker: candidates, features, LightGBM, top-N",
                    "seconds": ranker, "ms_per_1000_users": 1e6 * ranker / len(rows),
                    "ratio_to_peer": ranker / als, "share_of_floor": floor / ranker,
                    **common})
    out.append({"step": "rank", "what": "ALS top-N (peer)", "seconds": als,
                "ms_per_1000_users": 1e6 * als / len(rows), "ratio_to_peer": 1.0, **common})
    out.append({"step": "rank", "what": "every generator's scores, no ranking (floor)",
                "seconds": floor, "ms_per_1000_users": 1e6 * floor / len(rows), **common})
    return out
