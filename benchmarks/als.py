"""ALS training: this pipeline's trainer (``implicit``) against Spark MLlib ALS with the same
factors, iterations and regularisation (mapped onto Spark's loss), on the same MovieLens
time split, with the NDCG@10 each reaches."""

from __future__ import annotations

from pathlib import Path

from benchmarks.util import median_seconds
from pipelines.core.settings import ModelSettings, SparkSettings
from pipelines.datasets.movielens import load_movielens, time_split
from pipelines.evaluate.metrics import ndcg_at_k
from pipelines.model.als import build_matrix, fit_als
from pipelines.serve.lists import popularity_lists, popularity_ranking, top_n_lists

SETTINGS = ModelSettings(factors=32, iterations=15, regularization=5.0, alpha=1.0, seed=42)


def bench_als(folder: Path, repeat: int, spark_master: str = "local[2]") -> list[dict]:
    import polars as pl

    from pipelines.core.spark import spark_session
    from pipelines.model.spark_als import fit_spark_als

    train, truth = time_split(load_movielens(folder).ratings)
    data = build_matrix(train)

    def ndcg(factors) -> float:
        return ndcg_at_k(top_n_lists(factors, data.user_ids, data.item_ids, truth["user_id"],
                                   n=10, seen=train), truth, 10)

    fit_als(data, SETTINGS)  # warm-up: thread pools, first allocations
    implicit_s = median_seconds(lambda: fit_als(data, SETTINGS), repeat)
    implicit_ndcg = ndcg(fit_als(data, SETTINGS))
    with spark_session(SparkSettings(master=spark_master, shuffle_partitions=4),
                       "bench-als") as spark:
        fit_spark_als(data, SETTINGS, spark)  # warm-up: JIT and the session's first job
        spark_s = median_seconds(lambda: fit_spark_als(data, SETTINGS, spark), repeat)
        spark_ndcg = ndcg(fit_spark_als(data, SETTINGS, spark))
    popularity = train.group_by("item_id").agg(popularity=pl.len().cast(pl.Float64))
    pop_ndcg = ndcg_at_k(popularity_lists(popularity_ranking(popularity, None, 500),
                                          truth["user_id"], 10, train), truth, 10)
    common = {"rows": train.height, "what_of": f"{folder.name}, factors {SETTINGS.factors}, "
              f"{SETTINGS.iterations} iterations, lambda {SETTINGS.regularization}"}
    return [
        {"step": "als", "what": "implicit (this pipeline)", "seconds": implicit_s,
         "rows_per_s": train.height / implicit_s, "ratio_to_peer": implicit_s / spark_s,
         "ndcg_at_10": implicit_ndcg, **common},
        {"step": "als", "what": f"Spark MLlib ALS ({spark_master})", "seconds": spark_s,
         "rows_per_s": train.height / spark_s, "ratio_to_peer": 1.0,
         "ndcg_at_10": spark_ndcg, **common},
        {"step": "als", "what": "popularity (no training)", "ndcg_at_10": pop_ndcg, **common},
    ]
