"""User shards: users are split into ``serve.shards`` shards by a stable hash of their id, and
each shard is scored on its own (a mapped Airflow task, or a Dask worker)."""

from __future__ import annotations

import zlib

import numpy as np
import polars as pl


def shard_of(user_ids: pl.Series, shards: int) -> np.ndarray:
    """The shard of each user: crc32 of the id, so every worker and every release agrees."""
    return np.fromiter((zlib.crc32(u.encode()) % shards for u in user_ids), dtype=np.int64,
                       count=user_ids.len())


def hash_sample(user_ids: pl.Series, n: int) -> pl.Series:
    """At most ``n`` of the distinct ``user_ids``, sorted: those of lowest crc32 (ties by id),
    so the same ids give the same sample in any order, on any machine, in any release."""
    ids = user_ids.unique()
    if ids.len() <= n:
        return ids.sort()
    crc = pl.Series([zlib.crc32(u.encode()) for u in ids], dtype=pl.UInt32)
    return (pl.DataFrame({"user_id": ids, "_crc": crc}).sort("_crc", "user_id")
            .head(n)["user_id"].sort().rename(user_ids.name))


def shard_task_name(shard: int, shards: int) -> str:
    return f"precompute-{shard}-of-{shards}"


def shard_totals(summaries: list[dict]) -> dict:
    """The precompute volumes of a run from its shards' summaries."""
    return {"model_version": summaries[0]["model_version"], "shards": len(summaries),
            **{key: sum(s[key] for s in summaries)
               for key in ("active_users", "users", "rows", "cold_item_rows")}}
