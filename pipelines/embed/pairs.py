"""Training pairs for the encoder, mined from clean events.

- ``next``: the text of a user's history before an interaction (as the nightly embed writes
  it: the ``k`` latest, newest first) and the text of the item the user took next;
- ``co``: the texts of two items one user took within ``window_days`` of each other.

A run of events on one item (a view, then its click, then its purchase) counts as one step, so
no pair links an item to itself; an anchor's history still holds every event, as the nightly
history text does. Each kind is a seeded sample of its candidates, taken from
frames sorted first, so the same events always give the same pairs.
"""

from __future__ import annotations

import polars as pl

from pipelines.embed.texts import item_texts, user_texts

PAIR_SCHEMA = {"kind": pl.String, "anchor": pl.String, "positive": pl.String}


def _ordered(events: pl.DataFrame, catalog: pl.DataFrame) -> pl.DataFrame:
    """Each user's events on catalog items in time order (what a history text is made of):
    ``_r`` (row), ``_pos`` (place in the user's sequence), ``_step`` (not a repeat of the
    event before on the same item) and the events' columns."""
    ordered = (events.join(catalog.select("item_id"), on="item_id", how="semi")
               .sort("user_id", "ts", "event_id"))
    repeat = ((pl.col("item_id") == pl.col("item_id").shift(1))
              & (pl.col("user_id") == pl.col("user_id").shift(1)))
    return (ordered.with_row_index("_r").with_columns(pl.col("_r").cast(pl.Int64))
            .with_columns(pl.int_range(pl.len()).over("user_id").alias("_pos"),
                          (~repeat).fill_null(True).alias("_step")))


def next_item_pairs(events: pl.DataFrame, catalog: pl.DataFrame, template: str, k: int,
                    n: int, seed: int) -> pl.DataFrame:
    """Up to ``n`` ``next`` pairs: (history text before a step, text of the step's item)."""
    seq = _ordered(events, catalog)
    targets = seq.filter(pl.col("_step") & (pl.col("_pos") > 0))
    targets = targets.sample(min(n, targets.height), seed=seed).sort("_r")
    if targets.is_empty():
        return pl.DataFrame(schema=PAIR_SCHEMA)
    # The k events before each target, under the target's row as their "user": user_texts
    # then writes each anchor exactly as the nightly embed writes that user's history then.
    before = (targets.select(
        pl.col("_r").alias("_target"),
        pl.int_ranges(pl.col("_r") - pl.min_horizontal(pl.col("_pos"), k), pl.col("_r"))
        .alias("_r"))
        .explode("_r")
        .join(seq.drop("user_id"), on="_r")
        .with_columns(pl.col("_target").cast(pl.String).alias("user_id")))
    anchors = user_texts(before, catalog, k).rename({"user_id": "_target", "text": "anchor"})
    items = item_texts(catalog, template).rename({"text": "positive"})
    return (targets.select(pl.col("_r").cast(pl.String).alias("_target"), "item_id")
            .join(anchors, on="_target").join(items, on="item_id")
            .sort("_target").select(pl.lit("next").alias("kind"), "anchor", "positive"))


def co_interaction_pairs(events: pl.DataFrame, catalog: pl.DataFrame, template: str,
                         window_days: int, n: int, seed: int) -> pl.DataFrame:
    """Up to ``n`` ``co`` pairs: two items one user took one after the other within
    ``window_days``, each unordered pair once."""
    seq = _ordered(events, catalog).filter("_step")
    within = pl.duration(days=window_days)
    follows = (seq.with_columns(pl.col("item_id").shift(1).over("user_id").alias("_prev"),
                                pl.col("ts").shift(1).over("user_id").alias("_prev_ts"))
               .filter(pl.col("_prev").is_not_null()
                       & (pl.col("ts") - pl.col("_prev_ts") <= within)))
    found = (follows.select(pl.min_horizontal("_prev", "item_id").alias("a"),
                            pl.max_horizontal("_prev", "item_id").alias("b"))
             .unique().sort("a", "b"))
    found = found.sample(min(n, found.height), seed=seed).sort("a", "b")
    texts = item_texts(catalog, template)
    return (found.join(texts.rename({"item_id": "a", "text": "anchor"}), on="a")
            .join(texts.rename({"item_id": "b", "text": "positive"}), on="b")
            .sort("a", "b").select(pl.lit("co").alias("kind"), "anchor", "positive"))


def mine_pairs(events: pl.DataFrame, catalog: pl.DataFrame, template: str, k: int,
               window_days: int, max_pairs: int, seed: int) -> pl.DataFrame:
    """``kind, anchor, positive``: up to ``max_pairs`` in all, half of each kind (the other's
    share where one has fewer), identical texts dropped."""
    nxt = next_item_pairs(events, catalog, template, k, max_pairs, seed)
    co = co_interaction_pairs(events, catalog, template, window_days, max_pairs, seed + 1)
    half = max_pairs // 2
    n_next = min(nxt.height, max(half, max_pairs - co.height))
    n_co = min(co.height, max_pairs - n_next)
    pairs = pl.concat([nxt.sample(n_next, seed=seed), co.sample(n_co, seed=seed)])
    return pairs.filter(pl.col("anchor") != pl.col("positive"))
