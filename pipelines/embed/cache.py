"""The embedding cache: a text is embedded once per encoder and precision, keyed by the hash of
the text the encoder actually sees (cut at its token limit), and its vector reused after."""

from __future__ import annotations

import polars as pl

from pipelines.core.settings import EmbedSettings
from pipelines.embed.encoder import Encoder
from pipelines.embed.texts import item_texts, text_hash, user_texts

KEYS = {"items": "item_id", "users": "user_id"}


def day_texts(encoder: Encoder, catalog: pl.DataFrame, events: pl.DataFrame | None,
              cfg: EmbedSettings) -> dict[str, pl.DataFrame]:
    """``key, text, text_hash`` per kind: the catalog's item texts and (with ``events``) the
    users' history texts, each cut to what the encoder reads."""
    texts = {"items": item_texts(catalog, cfg.item_template).rename({"item_id": "key"})}
    if events is not None:
        texts["users"] = user_texts(events, catalog, cfg.history_k).rename({"user_id": "key"})
    for kind, frame in texts.items():
        fitted = pl.Series("text", encoder.fit(frame["text"].to_list()), dtype=pl.String)
        texts[kind] = frame.with_columns(fitted, text_hash(fitted).alias("text_hash"))
    return texts


def empty_cache(dim: int) -> pl.DataFrame:
    return pl.DataFrame(schema={"text_hash": pl.String, "vector": pl.Array(pl.Float32, dim)})


def to_embed(texts: dict[str, pl.DataFrame], cached: pl.DataFrame) -> pl.DataFrame:
    """``text, text_hash`` of the distinct texts the cache lacks, in hash order."""
    return (pl.concat([f.select("text", "text_hash") for f in texts.values()])
            .join(cached, on="text_hash", how="anti").unique("text_hash").sort("text_hash"))


def vectors(texts: dict[str, pl.DataFrame], table: pl.DataFrame,
            model: str) -> dict[str, pl.DataFrame]:
    """Per kind, ``<key>, text_hash, model, vector`` sorted by key, from the cache ``table``."""
    return {
        kind: (frame.join(table, on="text_hash", how="left")
               .select(pl.col("key").alias(KEYS[kind]), "text_hash",
                       pl.lit(model).alias("model"), "vector")
               .sort(KEYS[kind]))
        for kind, frame in texts.items()
    }


def counts(texts: pl.DataFrame, embedded: pl.DataFrame) -> dict[str, int]:
    """How many of a kind's texts were embedded tonight and how many came from the cache."""
    new = int(texts["text_hash"].is_in(embedded["text_hash"].implode()).sum())
    return {"texts": texts.height, "embedded": new, "reused": texts.height - new}
