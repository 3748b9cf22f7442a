"""The raw-input contract (see README, "Raw input") as column names and polars types."""

from __future__ import annotations

import polars as pl

EVENT_TYPES: tuple[str, ...] = ("view", "click", "add_to_cart", "purchase", "rate", "review")

EVENT_COLUMNS: dict[str, pl.DataType] = {
    "event_id": pl.String(),
    "user_id": pl.String(),
    "item_id": pl.String(),
    "event_type": pl.String(),
    "ts": pl.Datetime("us", "UTC"),
    "value": pl.Float64(),
    "text": pl.String(),
}
EVENT_REQUIRED: tuple[str, ...] = ("event_id", "user_id", "item_id", "event_type", "ts")

ITEM_COLUMNS: dict[str, pl.DataType] = {
    "item_id": pl.String(),
    "title": pl.String(),
    "description": pl.String(),
    "category": pl.String(),
    "tags": pl.String(),
    "available": pl.Boolean(),
    "updated_at": pl.Datetime("us", "UTC"),
}
ITEM_REQUIRED: tuple[str, ...] = ("item_id", "title", "updated_at")

RAW_FORMATS: dict[str, str] = {
    ".parquet": "parquet", ".csv": "csv", ".jsonl": "json", ".json": "json",
}


def empty_events() -> pl.DataFrame:
    return pl.DataFrame(schema=EVENT_COLUMNS)


def empty_items() -> pl.DataFrame:
    return pl.DataFrame(schema=ITEM_COLUMNS)
