"""The texts a language model sees: one per item and one per user history."""

from __future__ import annotations

import hashlib

import polars as pl

from pipelines.core.contracts import ITEM_TEXT_FIELDS, check_template


def item_texts(catalog: pl.DataFrame, template: str) -> pl.DataFrame:
    """``item_id, text`` from the catalog; empty fields leave no dangling punctuation."""
    check_template(template)
    rows = catalog.select("item_id", *ITEM_TEXT_FIELDS).to_dicts()
    texts = []
    for row in rows:
        values = {k: ", ".join(p.strip() for p in (row[k] or "").split("|") if p.strip())
                  for k in ITEM_TEXT_FIELDS}
        text = template.format(**values)
        # Collapse the ". ." left by empty fields.
        parts = [p.strip() for p in text.split(". ")]
        texts.append(". ".join(p for p in parts if p.strip(" .")))
    return pl.DataFrame({"item_id": catalog["item_id"], "text": texts},
                        schema={"item_id": pl.String, "text": pl.String})


ACTIONS = {
    "view": "viewed", "click": "clicked", "add_to_cart": "added to cart",
    "purchase": "bought", "rate": "rated", "review": "reviewed",
}


def user_texts(events: pl.DataFrame, catalog: pl.DataFrame, k: int) -> pl.DataFrame:
    """``user_id, text``: the user's ``k`` most recent interactions, newest first.

    Each is "<action> <title>" (with the rating when there is one); review texts follow.
    """
    titled = (
        events.join(catalog.select("item_id", "title"), on="item_id", how="inner")
        .sort(["user_id", "ts", "event_id"], descending=[False, True, True])
        .group_by("user_id", maintain_order=True)
        .head(k)
    )
    action = pl.col("event_type").replace_strict(ACTIONS, default=pl.col("event_type"))
    rating = pl.when(pl.col("event_type") == "rate").then(
        pl.format(" (rating {})", pl.col("value").round(1))
    ).otherwise(pl.lit(""))
    line = pl.format("{} {}{}", action, pl.col("title"), rating)
    return (
        titled.with_columns(line.alias("_line"))
        .group_by("user_id", maintain_order=True)
        .agg(
            pl.col("_line").str.join("; ").alias("_history"),
            pl.col("text").drop_nulls().str.join(" ").alias("_reviews"),
        )
        .select(
            "user_id",
            pl.when(pl.col("_reviews") == "")
            .then(pl.col("_history"))
            .otherwise(pl.format("{}. Reviews: {}", pl.col("_history"), pl.col("_reviews")))
            .alias("text"),
        )
        .sort("user_id")
    )


def text_hash(texts: pl.Series) -> pl.Series:
    """A stable content hash (sha256, hex) per text: the embedding cache key."""
    return pl.Series(
        texts.name, [hashlib.sha256(t.encode()).hexdigest() for t in texts.to_list()],
        dtype=pl.String,
    )
