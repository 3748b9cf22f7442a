"""The raw-input contract (see README, "Raw input") as column names and polars types."""

from __future__ import annotations

from datetime import date

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

def day_start_us(day: date) -> int:
    """Microseconds since the epoch at 00:00 UTC of ``day`` (partition days are UTC days)."""
    return (day - date(1970, 1, 1)).days * 86_400_000_000


RAW_FORMATS: dict[str, str] = {
    ".parquet": "parquet", ".csv": "csv", ".jsonl": "json", ".json": "json",
}


def empty_events() -> pl.DataFrame:
    return pl.DataFrame(schema=EVENT_COLUMNS)


def empty_items() -> pl.DataFrame:
    return pl.DataFrame(schema=ITEM_COLUMNS)
