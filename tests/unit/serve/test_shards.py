"""User shards and the fixed user samples drawn by the same hash."""

from __future__ import annotations

import zlib

import polars as pl

from pipelines.serve.shards import hash_sample, shard_of


def test_shards_are_crc32_of_the_id() -> None:
    ids = pl.Series("user_id", ["a", "b", "c", "d"])
    assert shard_of(ids, 3).tolist() == [zlib.crc32(u.encode()) % 3 for u in ids]


def test_a_hash_sample_is_the_lowest_crc32_in_any_order() -> None:
    ids = [f"u{n}" for n in range(50)]
    lowest = sorted(sorted(ids, key=lambda u: (zlib.crc32(u.encode()), u))[:7])
    assert hash_sample(pl.Series("user_id", ids), 7).to_list() == lowest
    assert hash_sample(pl.Series("user_id", ids[::-1] + ids[:5]), 7).to_list() == lowest
    assert hash_sample(pl.Series("user_id", ids), 70).to_list() == sorted(ids)
