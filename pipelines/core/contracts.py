"""The data contracts as column names and polars types: the raw input (see README, "Raw
input"), one landed day, and the frames stages hand each other (lists, metrics)."""

from __future__ import annotations

import string
from dataclasses import dataclass
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
# Ids are keys in the lake, the models and both warehouses, and travel in exports: at most this
# many characters, none of them a control character.
MAX_ID_CHARS = 256
ID_CONTROL_CHARACTERS = r"[\x00-\x1f\x7f]"
# PostgreSQL's text cannot hold NUL (U+0000): free text with one would break publish there.
NUL_CHARACTER = r"\x00"

# The catalog fields an item's text (``embed.item_template``) may name.
ITEM_TEXT_FIELDS: tuple[str, ...] = ("title", "description", "category", "tags")

RAW_FORMATS: dict[str, str] = {
    ".parquet": "parquet", ".csv": "csv", ".jsonl": "json", ".json": "json",
}

# One ranked list row, and one evaluation number.
REC_SCHEMA = {"user_id": pl.String, "rank": pl.Int32, "item_id": pl.String, "score": pl.Float64}
METRIC_SCHEMA = {"model": pl.String, "metric": pl.String, "k": pl.Int32, "value": pl.Float64}


@dataclass(frozen=True)
class RawDay:
    """One landed day: what the generator and the importers write into the raw area."""

    ds: date
    events: pl.DataFrame  # exactly EVENT_COLUMNS (names, order, dtypes)
    items: pl.DataFrame  # exactly ITEM_COLUMNS; the catalog changes landed that day


def day_start_us(day: date) -> int:
    """Microseconds since the epoch at 00:00 UTC of ``day`` (partition days are UTC days)."""
    return (day - date(1970, 1, 1)).days * 86_400_000_000


def template_fields(template: str) -> set[str]:
    """The ``{field}`` names a format template uses."""
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


def check_template(template: str) -> None:
    """ValueError naming the fields of ``template`` that are not ITEM_TEXT_FIELDS."""
    unknown = template_fields(template) - set(ITEM_TEXT_FIELDS)
    if unknown:
        raise ValueError(
            f"embed.item_template uses unknown field(s) {sorted(unknown)}; "
            f"allowed: {', '.join(ITEM_TEXT_FIELDS)}"
        )


def empty_events() -> pl.DataFrame:
    return pl.DataFrame(schema=EVENT_COLUMNS)


def empty_items() -> pl.DataFrame:
    return pl.DataFrame(schema=ITEM_COLUMNS)
