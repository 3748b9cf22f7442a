"""Parsing and writing the raw-input files (Parquet, CSV, JSON lines) of one partition.

Bytes in, frames out (and back): the task reads and writes the files. Parsers return every
column as text, so that the validator can give a verdict per value instead of failing on the
first bad cast.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import polars as pl

from pipelines.core.contracts import RAW_FORMATS
from pipelines.core.errors import RawFileError


def raw_format(name: str) -> str | None:
    for suffix, fmt in RAW_FORMATS.items():
        if name.endswith(suffix):
            return fmt
    return None


def data_files(names: list[str]) -> list[str]:
    """The data files among a raw partition's names (hidden files and unknown extensions are
    ignored)."""
    return [n for n in names if not n.startswith((".", "_")) and raw_format(n)]


MALFORMED = "_malformed"  # on a row made from a truncated last JSON line: what the line held


@dataclass(frozen=True)
class RawFile:
    """One raw file: every column as text, with the types the file itself declared."""

    url: str
    fmt: str
    frame: pl.DataFrame
    dtypes: dict[str, str]


def _as_text(df: pl.DataFrame, url: str) -> pl.DataFrame:
    exprs = []
    for name, dtype in df.schema.items():
        col = pl.col(name)
        if dtype.is_nested() or dtype == pl.Object:
            raise RawFileError(f"{url}: column {name} has type {dtype}, which cannot be cast to "
                               "the contract's scalar types")
        if isinstance(dtype, pl.Datetime):
            # Naive timestamps are taken as UTC, as the contract says.
            if dtype.time_zone is None:
                col = col.dt.replace_time_zone("UTC")
            col = col.dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        elif dtype != pl.String:
            col = col.cast(pl.String)
        exprs.append(col.alias(name))
    return df.select(exprs)


def _utf8(data: bytes, url: str) -> str:
    try:
        # A byte-order mark is allowed and dropped (spreadsheets write one).
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RawFileError(f"{url}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def _json_lines(text: str, url: str) -> pl.DataFrame:
    """JSON lines; a truncated *last* line (a writer cut off) becomes a row marked malformed,
    any other unparseable line makes the whole file unusable."""
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    rows = []
    for pos, (n, line) in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            if pos == len(lines) - 1 and not text.endswith("\n"):
                # Kept (cut to a readable length) so the quarantine shows what arrived.
                rows.append({MALFORMED: f"truncated last line: {line[:1000]}"})
                continue
            raise RawFileError(f"{url}: line {n} is not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise RawFileError(f"{url}: line {n} is not a JSON object")
        rows.append({k: None if v is None else v if isinstance(v, str) else json.dumps(v)
                     for k, v in row.items()})
    if not rows:
        return pl.DataFrame()
    columns = sorted({k for row in rows for k in row})
    return pl.DataFrame({c: [row.get(c) for row in rows] for c in columns},
                        schema={c: pl.String for c in columns})


def parse_raw_file(url: str, data: bytes) -> RawFile:
    """One raw file as text columns; raises RawFileError naming the file when it is unusable."""
    fmt = raw_format(url)
    try:
        if fmt == "parquet":
            native = pl.read_parquet(io.BytesIO(data))
            dtypes = {c: str(t) for c, t in native.schema.items()}
            return RawFile(url, fmt, _as_text(native, url), dtypes)
        text = _utf8(data, url)
        if fmt == "csv":
            # Quoted fields may hold newlines; a header-only or empty file has no rows.
            frame = (pl.read_csv(io.StringIO(text), infer_schema=False) if text.strip()
                     else pl.DataFrame())
        else:
            frame = _json_lines(text, url)
    except RawFileError:
        raise
    except Exception as exc:  # the reader's own message says what is wrong inside the file
        raise RawFileError(f"{url}: cannot be read as {fmt}: {exc}") from exc
    return RawFile(url, fmt, frame, {c: "String" for c in frame.columns})


def raw_file_bytes(df: pl.DataFrame, fmt: str = "parquet") -> tuple[str, bytes]:
    """One raw file in the contract's formats (for the generator and the importers): its
    extension and its bytes."""
    if fmt == "parquet":
        buf = io.BytesIO()
        df.write_parquet(buf, compression="zstd", statistics=True)
        return ".parquet", buf.getvalue()
    text_df = _as_text(df, f"a {fmt} file")
    buf = io.BytesIO()
    if fmt == "csv":
        text_df.write_csv(buf)
        return ".csv", buf.getvalue()
    if fmt == "jsonl":
        text_df.write_ndjson(buf)
        return ".jsonl", buf.getvalue()
    raise ValueError(f"unknown raw format {fmt!r}; expected parquet, csv or jsonl")
