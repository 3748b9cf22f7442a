"""Warehouse bulk load: the publish path's loaders against a plain ``executemany``.

DuckDB: Arrow (what publish does) vs ``executemany`` of row tuples. PostgreSQL (a throwaway
local server unless ``--postgres URL``): binary COPY fed row by row by psycopg (what publish
does) vs ``executemany``, and the floor: the same rows' COPY bytes, encoded beforehand, written
in large chunks. ``executemany`` is timed on a slice (it is slow) and reported in rows/s.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.warehouse import TABLE_COLUMNS, TABLE_SCHEMAS

COLUMNS = TABLE_COLUMNS["recommendations"]
CREATE = """create table bench_recs (ds date, user_id text, rank integer, item_id text,
    score double precision, reason text, model_version text, run_id text)"""


def recommendation_rows(n_rows: int, per_user: int = 100, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    users = np.arange(n_rows) // per_user
    return pl.DataFrame({
        "ds": [date(2026, 10, 1)] * n_rows,
        "user_id": pl.Series(users).cast(pl.String).str.zfill(8),
        "rank": (np.arange(n_rows) % per_user + 1).astype(np.int32),
        "item_id": pl.Series(rng.integers(0, 50_000, n_rows)).cast(pl.String).str.zfill(6),
        "score": rng.random(n_rows),
        "reason": pl.Series(rng.choice(["similar to The Matrix (1999)", "popular now",
                                        "liked by people with similar taste"], n_rows)),
        "model_version": ["20261001-0123456789ab"] * n_rows,
        "run_id": ["scheduled__2026-10-01T00:00:00+00:00"] * n_rows,
    }).cast(TABLE_SCHEMAS["recommendations"])


def _median_rate(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    """Median seconds of ``fn`` (which loads and returns a row count) and that count."""
    times, rows = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        rows = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), rows


def bench_duckdb(frame: pl.DataFrame, slice_rows: int, repeat: int) -> list[dict]:
    import duckdb

    tuples = frame.head(slice_rows).rows()
    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect(str(Path(tmp) / "bench.duckdb"))

        def arrow() -> int:
            con.execute("drop table if exists bench_recs")
            con.execute(CREATE)
            con.register("chunk", frame.to_arrow())
            con.execute("insert into bench_recs select * from chunk")
            con.unregister("chunk")
            return frame.height

        def many() -> int:
            con.execute("drop table if exists bench_recs")
            con.execute(CREATE)
            con.executemany("insert into bench_recs values (?, ?, ?, ?, ?, ?, ?, ?)", tuples)
            return len(tuples)

        results = [("Arrow (publish path)", *_median_rate(arrow, repeat)),
                   ("executemany", *_median_rate(many, repeat))]
        con.close()
    return _rows("load/duckdb", results, peer="executemany")


def bench_postgres(frame: pl.DataFrame, slice_rows: int, repeat: int,
                   url: str | None) -> list[dict]:
    import psycopg

    from pipelines.warehouse.postgres_backend import PostgresWarehouse

    server = None
    if url is None:
        from tests.support.pg_local import PostgresServer, find_bindir

        bindir = find_bindir()
        if bindir is None:
            print("# load/postgresql: skipped, no PostgreSQL server binaries (initdb)")
            return []
        server = PostgresServer(bindir).start()
        url = server.create_database("bench")
    tuples = frame.head(slice_rows).rows()
    placeholders = ", ".join(["%s"] * len(COLUMNS))
    try:
        with psycopg.connect(url, autocommit=True) as con:
            def fresh() -> None:
                con.execute("drop table if exists bench_recs")
                con.execute(CREATE)

            def copy_rows() -> int:
                fresh()
                with con.transaction():
                    PostgresWarehouse._copy(con, psycopg.sql.Identifier("bench_recs"), frame,
                                            "recommendations")
                return frame.height

            copy_rows()
            encoded = bytearray()
            with con.cursor() as cur, cur.copy("copy bench_recs to stdout (format binary)") as out:
                for block in out:
                    encoded += block

            def copy_raw() -> int:
                fresh()
                with con.transaction(), con.cursor() as cur, \
                        cur.copy("copy bench_recs from stdin (format binary)") as copy:
                    view = memoryview(encoded)
                    for start in range(0, len(view), 1 << 20):
                        copy.write(view[start:start + (1 << 20)])
                return frame.height

            def many() -> int:
                fresh()
                with con.transaction(), con.cursor() as cur:
                    cur.executemany(f"insert into bench_recs values ({placeholders})", tuples)
                return len(tuples)

            path = "binary COPY, rows from psycopg (publish path)"
            floor = "binary COPY of pre-encoded bytes (floor)"
            results = [(path, *_median_rate(copy_rows, repeat)),
                       (floor, *_median_rate(copy_raw, repeat)),
                       ("executemany", *_median_rate(many, repeat))]
    finally:
        if server is not None:
            server.stop()
    return _rows("load/postgresql", results, peer="executemany", held=(path, floor))


def _rows(step: str, results: list[tuple[str, float, int]], peer: str,
          held: tuple[str, str] | None = None) -> list[dict]:
    """``held``: (path, floor), the path whose share of the floor's rate is reported."""
    rates = {what: rows / seconds for what, seconds, rows in results}
    return [{"step": step, "what": what, "rows": rows, "seconds": seconds,
             "rows_per_s": rows / seconds, "ratio_to_peer": rates[what] / rates[peer],
             "share_of_floor": rates[what] / rates[held[1]]
             if held is not None and what == held[0] else None}
            for what, seconds, rows in results]


def bench_load(n_rows: int, repeat: int, slice_rows: int = 20_000,
               postgres: str | None = None) -> list[dict]:
    """Rows/s into each warehouse; ``ratio_to_peer`` is the speed-up over ``executemany``."""
    frame = recommendation_rows(n_rows)
    # DuckDB's executemany runs one statement per row (about 1,500 rows/s): a smaller slice.
    return (bench_duckdb(frame, slice_rows // 4, repeat)
            + bench_postgres(frame, slice_rows, repeat, postgres))
