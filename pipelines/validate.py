"""Row-level verdicts for one day of raw events and catalog rows.

Every raw row ends in exactly one of: clean, quarantined (with the reasons it failed) or
duplicate (a re-delivered ``event_id``). Structural problems that make a whole file unusable
(a missing required column) raise ``RawFileError`` naming the file and the column.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import polars as pl

from pipelines.config import ValidateSettings
from pipelines.rawfiles import RawFileError
from pipelines.schema import (
    EVENT_COLUMNS,
    EVENT_REQUIRED,
    EVENT_TYPES,
    ITEM_COLUMNS,
    ITEM_REQUIRED,
)

SOURCE = "_source"
REASONS = "reasons"
DUPLICATE = "duplicate_event_id"


@dataclass(frozen=True)
class Verdict:
    clean: pl.DataFrame        # contract columns, contract types
    quarantine: pl.DataFrame   # the raw text columns, the source file and the reasons
    n_raw: int
    n_duplicates: int

    @property
    def n_clean(self) -> int:
        return self.clean.height

    @property
    def n_quarantined(self) -> int:
        return self.quarantine.height - self.n_duplicates


def day_bounds(ds: date) -> tuple[datetime, datetime]:
    start = datetime.combine(ds, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def parse_ts(col: pl.Expr) -> pl.Expr:
    """ISO-8601 text with or without an offset (no offset means UTC) to a UTC timestamp."""
    return pl.coalesce(
        col.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%#z", time_zone="UTC", strict=False),
        col.str.to_datetime("%Y-%m-%d %H:%M:%S%.f%#z", time_zone="UTC", strict=False),
        col.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False).dt.replace_time_zone("UTC"),
        col.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False).dt.replace_time_zone("UTC"),
    ).dt.cast_time_unit("us")


def parse_bool(col: pl.Expr) -> pl.Expr:
    text = col.str.strip_chars().str.to_lowercase()
    return (
        pl.when(text.is_in(["true", "1", "t", "yes", "y"])).then(True)
        .when(text.is_in(["false", "0", "f", "no", "n"])).then(False)
        .otherwise(None)
    )


def conform(raw: pl.DataFrame, columns: dict[str, pl.DataType],
            required: tuple[str, ...], source: str) -> pl.DataFrame:
    """One file's text frame with exactly the contract columns plus ``_source``.

    A missing required column makes the whole file unusable; missing optional columns become
    nulls and extra columns are dropped (the caller reports them).
    """
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise RawFileError(f"{source}: missing required column(s) {', '.join(missing)}")
    add = [pl.lit(None, pl.String).alias(c) for c in columns if c not in raw.columns]
    return raw.with_columns(*add, pl.lit(source).alias(SOURCE)).select([*columns, SOURCE])


def concat_files(frames: list[pl.DataFrame], columns: dict[str, pl.DataType]) -> pl.DataFrame:
    """The conformed files of one partition as one text frame (an empty partition is allowed)."""
    if not frames:
        return pl.DataFrame(schema={**{c: pl.String for c in columns}, SOURCE: pl.String})
    return pl.concat(frames, how="vertical")


def _reasons(checks: list[tuple[str, pl.Expr]]) -> pl.Expr:
    flags = [pl.when(cond).then(pl.lit(name)).otherwise(None) for name, cond in checks]
    return pl.concat_list(flags).list.drop_nulls().alias(REASONS)


def _blank(name: str) -> pl.Expr:
    return pl.col(name).is_null() | (pl.col(name).str.strip_chars() == "")


def validate_events(raw: pl.DataFrame, ds: date, catalog_ids: pl.Series,
                    accepted_ids: pl.Series, cfg: ValidateSettings) -> Verdict:
    """Verdicts for one day's events (``raw``: text columns from ``concat_files``).

    ``catalog_ids``: item ids in the catalog as of ``ds``; ``accepted_ids``: event ids already
    accepted on earlier days (a re-delivery of one of them is a duplicate, not a new event).
    """
    text = raw.with_row_index("_row")
    start, end = day_bounds(ds)
    earliest = start - timedelta(hours=cfg.lateness_hours)
    typed = text.with_columns(
        parse_ts(pl.col("ts")).alias("_ts"),
        pl.col("value").str.strip_chars().cast(pl.Float64, strict=False).alias("_value"),
    )
    ev, val = pl.col("event_type"), pl.col("_value")
    checks = [(f"missing_{c}", _blank(c)) for c in EVENT_REQUIRED]
    checks += [
        ("unparseable_ts", pl.col("ts").is_not_null() & pl.col("_ts").is_null()),
        ("unparseable_value", pl.col("value").is_not_null() & val.is_null()),
        ("unknown_event_type", ev.is_not_null() & ~ev.is_in(list(EVENT_TYPES))),
        ("ts_in_future", pl.col("_ts") >= end),
        ("ts_too_late", pl.col("_ts") < earliest),
        ("rating_out_of_scale", (ev == "rate")
         & (val.is_null() | (val < cfg.rating_min) | (val > cfg.rating_max))),
        ("negative_dwell", (ev == "view") & (val < 0)),
        ("unknown_item",
         pl.col("item_id").is_not_null() & ~pl.col("item_id").is_in(catalog_ids.implode())),
        ("text_too_long", pl.col("text").str.len_chars() > cfg.max_text_chars),
    ]
    judged = typed.with_columns(_reasons(checks))
    # Among otherwise good rows the first delivery of an event_id wins (earliest ts, then file
    # order); later copies and re-deliveries of already accepted events are duplicates.
    good = judged.filter(pl.col(REASONS).list.len() == 0).sort(["_ts", "_row"])
    repeat = good.select(
        "_row",
        (pl.col("event_id").is_duplicated() & ~pl.col("event_id").is_first_distinct())
        .or_(pl.col("event_id").is_in(accepted_ids.implode())).alias("_dup"),
    )
    judged = judged.join(repeat, on="_row", how="left").with_columns(
        pl.when(pl.col("_dup").fill_null(False))
        .then(pl.lit([DUPLICATE])).otherwise(pl.col(REASONS)).alias(REASONS)
    )
    is_clean = pl.col(REASONS).list.len() == 0
    clean = (
        judged.filter(is_clean)
        .sort(["_ts", "_row"])
        .select(
            "event_id", "user_id", "item_id", "event_type",
            pl.col("_ts").alias("ts"), pl.col("_value").alias("value"), "text",
        )
    )
    quarantine = (
        judged.filter(~is_clean)
        .sort("_row")
        .select([*EVENT_COLUMNS, SOURCE, pl.col(REASONS).list.join(",")])
    )
    n_dup = quarantine.filter(pl.col(REASONS) == DUPLICATE).height
    return Verdict(clean=clean, quarantine=quarantine, n_raw=raw.height, n_duplicates=n_dup)


def validate_items(raw: pl.DataFrame, ds: date) -> Verdict:
    """Verdicts for one day's catalog rows: title required, ``updated_at`` not after ``ds``."""
    text = raw.with_row_index("_row")
    _, end = day_bounds(ds)
    typed = text.with_columns(
        parse_ts(pl.col("updated_at")).alias("_updated_at"),
        parse_bool(pl.col("available")).alias("_available"),
    )
    checks = [(f"missing_{c}", _blank(c)) for c in ITEM_REQUIRED]
    checks += [
        ("unparseable_updated_at",
         pl.col("updated_at").is_not_null() & pl.col("_updated_at").is_null()),
        ("updated_at_in_future", pl.col("_updated_at") >= end),
        ("unparseable_available",
         pl.col("available").is_not_null() & pl.col("_available").is_null()),
    ]
    judged = typed.with_columns(_reasons(checks))
    is_clean = pl.col(REASONS).list.len() == 0
    clean = judged.filter(is_clean).sort("_row").select(
        "item_id", "title", "description", "category", "tags",
        pl.col("_available").fill_null(True).alias("available"),
        pl.col("_updated_at").alias("updated_at"),
    )
    quarantine = judged.filter(~is_clean).select(
        [*ITEM_COLUMNS, SOURCE, pl.col(REASONS).list.join(",")]
    )
    return Verdict(clean=clean, quarantine=quarantine, n_raw=raw.height, n_duplicates=0)


def latest_catalog(items: pl.DataFrame) -> pl.DataFrame:
    """The catalog as of the newest row: the latest row per ``item_id`` (ties: the later row)."""
    if items.is_empty():
        return items
    return (
        items.with_row_index("_order")
        .sort(["updated_at", "_order"])
        .unique("item_id", keep="last", maintain_order=True)
        .drop("_order")
        .sort("item_id")
    )
