"""Row-level verdicts for one day of raw events and catalog rows.

The raw text is *prepared* (blank keys to nulls, typed and looked-up columns), the expectation
suites of ``pipelines.validate.expectations`` run on it with Great Expectations, and every raw
row ends in exactly one of: clean, quarantined (with the expectations it failed) or duplicate (a
re-delivered ``event_id``). Structural problems that make a whole file unusable (a missing
required column) raise ``RawFileError`` naming the file and the column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import polars as pl

from pipelines.core.contracts import EVENT_COLUMNS, ITEM_COLUMNS
from pipelines.core.settings import ValidateSettings
from pipelines.validate.expectations import (
    DUPLICATE,
    REPORT_ONLY,
    UNIQUE_IN_PARTITION,
    event_expectations,
    item_expectations,
)
from pipelines.validate.gx_runner import ExpectationOutcome, SuiteRunner
from pipelines.validate.polars_suite import PolarsSession
from pipelines.validate.rawfiles import MALFORMED, RawFileError

SOURCE = "_source"
REASONS = "reasons"
ROW = "_row"


@dataclass(frozen=True)
class RowVerdict:
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
    """One file's text frame with exactly the contract columns, ``_malformed`` and ``_source``.

    A missing required column makes the whole file unusable; missing optional columns become
    nulls and extra columns are dropped (the caller reports them).
    """
    if raw.width == 0:  # an empty file (0 bytes, or JSON lines with no line): zero rows
        raw = pl.DataFrame(schema={c: pl.String for c in columns})
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise RawFileError(f"{source}: missing required column(s) {', '.join(missing)}")
    add = [pl.lit(None, pl.String).alias(c) for c in (*columns, MALFORMED)
           if c not in raw.columns]
    # A blank field is a missing one, however the writer quoted it.
    return raw.with_columns(*add, pl.lit(source).alias(SOURCE)).select(
        *_blank_to_null(tuple(columns)), MALFORMED, SOURCE)


TYPED_COLUMNS = {
    "ts": ("a timestamp", parse_ts),
    "updated_at": ("a timestamp", parse_ts),
    "value": ("a number", lambda c: c.str.strip_chars().cast(pl.Float64, strict=False)),
    "available": ("true or false", parse_bool),
}


CASTABLE_PROBE = 1000


def _any_parses(values: pl.Series, parse: Callable[[pl.Expr], pl.Expr]) -> bool:
    return values.to_frame().select(parse(pl.col(values.name)).is_not_null().any()).item()


def check_castable(frame: pl.DataFrame, source: str) -> None:
    """A typed column none of whose values parse is a file-level error (a wrong column or
    format), not a thousand row-level ones."""
    for column, (kind, parse) in TYPED_COLUMNS.items():
        if column not in frame.columns:
            continue
        present = frame.get_column(column).drop_nulls()
        # One value that parses settles it: a head first, the whole column only if none of
        # it does (parsing a million timestamps twice was a fifth of a big day's task).
        if len(present) and not (_any_parses(present.head(CASTABLE_PROBE), parse)
                                 or _any_parses(present, parse)):
            raise RawFileError(f"{source}: column {column}: no value can be cast to {kind} "
                               f"(e.g. {present[0]!r})")


def check_same_schema(files: list[tuple[str, str, dict[str, str]]],
                      columns: dict[str, pl.DataType]) -> None:
    """Files of one partition must agree on the contract columns they carry and, within one
    format, on their declared types. ``files``: (url, format, dtypes by column)."""
    files = [f for f in files if f[2]]  # an empty file has no columns to disagree with
    if not files:
        return
    first_url, first_fmt, first_types = files[0]
    first_cols = set(first_types) & set(columns)
    for url, fmt, types in files[1:]:
        cols = set(types) & set(columns)
        if cols != first_cols:
            diff = sorted(cols ^ first_cols)
            raise RawFileError(f"mixed schemas in one partition: {url} and {first_url} differ "
                               f"in column(s) {', '.join(diff)}")
        if fmt == first_fmt:
            for c in sorted(cols):
                if types[c] != first_types[c]:
                    raise RawFileError(
                        f"mixed schemas in one partition: column {c} is {types[c]} in {url} "
                        f"but {first_types[c]} in {first_url}")


def concat_files(frames: list[pl.DataFrame], columns: dict[str, pl.DataType]) -> pl.DataFrame:
    """The conformed files of one partition as one text frame (an empty partition is allowed)."""
    if not frames:
        return pl.DataFrame(schema={**{c: pl.String for c in columns}, MALFORMED: pl.String,
                                    SOURCE: pl.String})
    return pl.concat(frames, how="vertical")


def _blank_to_null(columns: tuple[str, ...]) -> list[pl.Expr]:
    return [
        pl.when(pl.col(c).str.strip_chars() == "").then(None).otherwise(pl.col(c)).alias(c)
        for c in columns
    ]


def _epoch_us(col: pl.Expr) -> pl.Expr:
    return col.dt.epoch("us")


def prepare_events(raw: pl.DataFrame, catalog_ids: pl.Series,
                   accepted_ids: pl.Series) -> pl.DataFrame:
    """The frame the event suite runs on: the conformed text columns plus typed ones.

    ``catalog_ids``: item ids in the catalog as of ``ds``; ``accepted_ids``: event ids already
    accepted on earlier days.
    """
    # The window holds tens of millions of ids and the day far fewer: hash the day's ids, not
    # the window's, and keep the few of the window's that the day repeats.
    repeated = accepted_ids.filter(accepted_ids.is_in(raw["event_id"].drop_nulls().implode()))
    typed = raw.with_row_index(ROW).with_columns(pl.col(ROW).cast(pl.Int64)).with_columns(
        parse_ts(pl.col("ts")).alias("_ts"),
        # "nan" parses to NaN, which GX's pandas engine reads as missing: the same here.
        pl.col("value").str.strip_chars().cast(pl.Float64, strict=False).fill_nan(None)
        .alias("_value"),
        pl.when(pl.col("item_id").is_null()).then(None)
        .otherwise(pl.col("item_id").is_in(catalog_ids.implode())).alias("_known_item"),
        pl.when(pl.col("event_id").is_null()).then(None)
        .otherwise(pl.col("event_id").is_in(repeated.implode())).alias("_accepted_before"),
    )
    return typed.with_columns(_epoch_us(pl.col("_ts")).alias("_ts_us"))


def prepare_items(raw: pl.DataFrame) -> pl.DataFrame:
    """The frame the item suite runs on."""
    return raw.with_row_index(ROW).with_columns(pl.col(ROW).cast(pl.Int64)).with_columns(
        parse_ts(pl.col("updated_at")).alias("_updated_at"),
        parse_bool(pl.col("available")).alias("_available"),
    ).with_columns(_epoch_us(pl.col("_updated_at")).alias("_updated_at_us"))


def failed_rows(outcomes: list[ExpectationOutcome]) -> pl.DataFrame:
    """``_row, reasons`` of the rows that failed an expectation, their reasons sorted; the
    rows that passed everything are not in it (a big day's rows need no list column)."""
    failed = [
        pl.DataFrame({ROW: o.rows, "reason": [o.reason] * len(o.rows)},
                     schema={ROW: pl.Int64, "reason": pl.String})
        for o in outcomes if o.reason not in REPORT_ONLY and len(o.rows)
    ]
    if not failed:
        return pl.DataFrame(schema={ROW: pl.Int64, REASONS: pl.List(pl.String)})
    return (pl.concat(failed).unique().sort(ROW, "reason")
            .group_by(ROW, maintain_order=True).agg(pl.col("reason").alias(REASONS)))


def events_verdict(prepared: pl.DataFrame, outcomes: list[ExpectationOutcome]) -> RowVerdict:
    """Clean rows, quarantined rows (with reasons) and duplicates of one day's events.

    A row whose only failure is a re-delivery of an already accepted event is a duplicate; so is
    every later copy of an ``event_id`` among the otherwise good rows (the earliest ``ts``, then
    the first in file order, wins).
    """
    failed = failed_rows(outcomes)
    is_failed = pl.col(ROW).is_in(failed[ROW].implode())
    # The good rows in (ts, file order): the first of each event_id is clean, the rest repeats.
    # Only rows whose id the partition's uniqueness check flagged can repeat, so the search
    # runs on those alone (on a big day, hashing every id again is a tenth of the task).
    good = prepared.filter(~is_failed).sort(["_ts", ROW])
    flagged = next((o.rows for o in outcomes if o.reason == UNIQUE_IN_PARTITION), None)
    maybe = good if flagged is None else good.filter(pl.col(ROW).is_in(pl.Series(flagged)
                                                                        .implode()))
    later = maybe.filter(~pl.col("event_id").is_first_distinct())[ROW]
    is_repeat = pl.col(ROW).is_in(later.implode())
    clean = good.filter(~is_repeat).select(
        "event_id", "user_id", "item_id", "event_type",
        pl.col("_ts").alias("ts"), pl.col("_value").alias("value"), "text",
    )
    repeats = good.filter(is_repeat).with_columns(pl.lit([DUPLICATE]).alias(REASONS))
    quarantine = (
        pl.concat([prepared.join(failed, on=ROW, how="inner"), repeats])
        .sort(ROW)
        .select([*EVENT_COLUMNS, MALFORMED, SOURCE, pl.col(REASONS).list.join(",")])
    )
    n_dup = quarantine.filter(pl.col(REASONS) == DUPLICATE).height
    return RowVerdict(clean=clean, quarantine=quarantine, n_raw=prepared.height, n_duplicates=n_dup)


def items_verdict(prepared: pl.DataFrame, outcomes: list[ExpectationOutcome]) -> RowVerdict:
    failed = failed_rows(outcomes)
    clean = prepared.filter(~pl.col(ROW).is_in(failed[ROW].implode())).select(
        "item_id", "title", "description", "category", "tags",
        pl.col("_available").fill_null(True).alias("available"),
        pl.col("_updated_at").alias("updated_at"),
    )
    quarantine = prepared.join(failed, on=ROW, how="inner").sort(ROW).select(
        [*ITEM_COLUMNS, MALFORMED, SOURCE, pl.col(REASONS).list.join(",")]
    )
    return RowVerdict(clean=clean, quarantine=quarantine, n_raw=prepared.height, n_duplicates=0)


def validate_items(raw: pl.DataFrame, ds: date, session: SuiteRunner | None = None) -> tuple[
        RowVerdict, list[ExpectationOutcome]]:
    """Verdicts for one day's catalog rows, with the suite's outcomes."""
    session = session or PolarsSession()
    prepared = prepare_items(raw)
    outcomes = session.run("items", prepared, item_expectations(ds))
    return items_verdict(prepared, outcomes), outcomes


def validate_events(raw: pl.DataFrame, ds: date, catalog_ids: pl.Series,
                    accepted_ids: pl.Series, cfg: ValidateSettings,
                    session: SuiteRunner | None = None,
                    ) -> tuple[RowVerdict, list[ExpectationOutcome]]:
    """Verdicts for one day's events (``raw``: text columns from ``concat_files``)."""
    session = session or PolarsSession()
    prepared = prepare_events(raw, catalog_ids, accepted_ids)
    outcomes = session.run("events", prepared, event_expectations(ds, cfg))
    return events_verdict(prepared, outcomes), outcomes


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
