"""Reading and writing the raw-input files (Parquet, CSV, JSON lines) of one partition.

Readers return every column as text, so that the validator can give a verdict per value
instead of failing on the first bad cast.
"""

from __future__ import annotations

import io
from datetime import date

import polars as pl

from pipelines.schema import RAW_FORMATS
from pipelines.storage import Store, partition


class RawFileError(ValueError):
    """A raw file that cannot be used at all; the message names the file and the reason."""


def raw_format(name: str) -> str | None:
    for suffix, fmt in RAW_FORMATS.items():
        if name.endswith(suffix):
            return fmt
    return None


def list_raw_files(store: Store, kind: str, ds: date) -> list[str]:
    """Data files of a raw partition (hidden files and unknown extensions are ignored)."""
    names = store.listdir(kind, partition(ds))
    return [n for n in names if not n.startswith((".", "_")) and raw_format(n)]


def _as_text(df: pl.DataFrame) -> pl.DataFrame:
    exprs = []
    for name, dtype in df.schema.items():
        col = pl.col(name)
        if isinstance(dtype, pl.Datetime):
            # Naive timestamps are taken as UTC, as the contract says.
            if dtype.time_zone is None:
                col = col.dt.replace_time_zone("UTC")
            col = col.dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        elif dtype != pl.String:
            col = col.cast(pl.String)
        exprs.append(col.alias(name))
    return df.select(exprs)


def read_raw_file(store: Store, kind: str, ds: date, name: str) -> pl.DataFrame:
    """One raw file as text columns; raises RawFileError naming the file when it is unreadable."""
    url = store.url(kind, partition(ds), name)
    data = store.read_bytes(kind, partition(ds), name)
    fmt = raw_format(name)
    try:
        if fmt == "parquet":
            df = _as_text(pl.read_parquet(io.BytesIO(data)))
        elif fmt == "csv":
            try:
                data.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                reason = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
                raise RawFileError(f"{url}: {reason}") from exc
            df = pl.read_csv(io.BytesIO(data), infer_schema=False, encoding="utf8")
        else:
            text = data.decode("utf-8")
            lines = [line for line in text.splitlines() if line.strip()]
            body = io.StringIO("\n".join(lines))
            df = _as_text(pl.read_ndjson(body)) if lines else pl.DataFrame()
    except RawFileError:
        raise
    except Exception as exc:  # the reader's own message says what is wrong inside the file
        raise RawFileError(f"{url}: cannot be read as {fmt}: {exc}") from exc
    return df


def write_raw_file(store: Store, kind: str, ds: date, df: pl.DataFrame, fmt: str = "parquet",
                   name: str = "part-0") -> None:
    """Write one raw file in the contract layout (used by the generator and the importers)."""
    parts = (kind, partition(ds))
    if fmt == "parquet":
        store.write_parquet(df, *parts, f"{name}.parquet")
        return
    text_df = _as_text(df)
    buf = io.BytesIO()
    if fmt == "csv":
        text_df.write_csv(buf)
        store.write_bytes(buf.getvalue(), *parts, f"{name}.csv")
    elif fmt == "jsonl":
        text_df.write_ndjson(buf)
        store.write_bytes(buf.getvalue(), *parts, f"{name}.jsonl")
    else:
        raise ValueError(f"unknown raw format {fmt!r}; expected parquet, csv or jsonl")
