"""Readers under load: concurrent PostgreSQL readers querying random users' top 10 from
``recs.recommendations_current`` in a loop while a publish of a new day replaces what they read.

Each reader is a thread with its own connection (psycopg waits on the socket without the GIL),
as a service's connection pool would be. A read is an error when it raises, *mixed* when its rows
come from more than one ``ds``, and *empty* when a user who has a list on both days got none.
The publish is timed with the readers and, first, without them (the peer).
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import numpy as np
import polars as pl

from pipelines.warehouse import PublishRules, RunBatch

TOP_N = 100
N_ITEMS = 50_000
QUERY = ("select ds, rank, item_id from recs.recommendations_current "
         "where user_id = %s order by rank limit 10")


def night(ds: date, n_rows: int, seed: int) -> RunBatch:
    """``n_rows`` recommendations (100 per user) that pass the audit, for the same users every
    day."""
    rng = np.random.default_rng(seed)
    n_users = n_rows // TOP_N
    # Each user's 100 items: a random start in the catalog, then every 7th item (no repeats).
    start = rng.integers(0, N_ITEMS, n_users)[:, None]
    items = (start + 7 * np.arange(TOP_N)[None, :]) % N_ITEMS
    recs = pl.DataFrame({
        "user_id": pl.Series(np.repeat(np.arange(n_users), TOP_N)).cast(pl.String).str.zfill(8),
        "rank": np.tile(np.arange(1, TOP_N + 1, dtype=np.int32), n_users),
        "item_id": pl.Series(items.ravel()).cast(pl.String).str.zfill(6),
        "score": np.tile(np.linspace(1.0, 0.01, TOP_N), n_users),
        "reason": "liked by people with similar taste",
    })
    ids = pl.Series(np.arange(N_ITEMS)).cast(pl.String).str.zfill(6)
    return RunBatch(
        ds=ds, run_id=f"bench-{ds}", model_version=f"bench-{seed}:ranker", recommendations=recs,
        popular=pl.DataFrame({"rank": pl.Series([1, 2], dtype=pl.Int32),
                              "item_id": ["000000", "000001"], "score": [2.0, 1.0]}),
        metrics=pl.DataFrame(schema={"model": pl.String, "metric": pl.String, "k": pl.Int32,
                                     "value": pl.Float64}),
        catalog=pl.DataFrame({"item_id": ids, "title": "t", "category": "c",
                              "available": True}),
        seen=pl.DataFrame(schema={"user_id": pl.String, "item_id": pl.String}),
        active_users=n_users, started_at=datetime(2026, 1, 1, tzinfo=UTC),
        finished_at=datetime(2026, 1, 1, tzinfo=UTC))


@dataclass
class Reader:
    """One reader's tallies."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    mixed: int = 0
    empty: int = 0


def _read(url: str, n_users: int, stop: threading.Event, out: Reader, seed: int) -> None:
    import psycopg

    pick = random.Random(seed)
    try:
        con = psycopg.connect(url, autocommit=True)
    except psycopg.Error as exc:
        out.errors.append(f"connect: {exc}")
        return
    with con:
        while not stop.is_set():
            user = f"{pick.randrange(n_users):08d}"
            started = time.perf_counter()
            try:
                rows = con.execute(QUERY, [user]).fetchall()
            except psycopg.Error as exc:
                out.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            out.latencies.append(time.perf_counter() - started)
            out.mixed += len({r[0] for r in rows}) > 1
            out.empty += not rows


def bench_readers(n_rows: int, n_readers: int, url: str | None = None) -> list[dict]:
    """Publish a day of ``n_rows`` with no readers, then the next day with ``n_readers``
    reading throughout (from 1 s before the publish to its end)."""
    from pipelines.warehouse.postgres_backend import PostgresWarehouse

    server = None
    if url is None:
        from tests.support.pg_local import PostgresServer, find_bindir

        bindir = find_bindir()
        if bindir is None:
            print("# readers: skipped, no PostgreSQL server binaries (initdb)")
            return []
        server = PostgresServer(bindir).start()
        url = server.create_database("bench_readers")
    rules = PublishRules(top_n=TOP_N, retention_days=0)
    days = [night(date(2026, 10, d), n_rows, seed=d) for d in (1, 2, 3)]
    try:
        wh = PostgresWarehouse(url)
        wh.publish(days[0], rules)
        started = time.perf_counter()
        wh.publish(days[1], rules)
        alone = time.perf_counter() - started
        stop = threading.Event()
        readers = [Reader() for _ in range(n_readers)]
        threads = [threading.Thread(target=_read, args=(url, n_rows // TOP_N, stop, r, i))
                   for i, r in enumerate(readers)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        started = time.perf_counter()
        wh.publish(days[2], rules)
        loaded = time.perf_counter() - started
        stop.set()
        for t in threads:
            t.join()
        current = wh.query("select distinct ds from recs.recommendations_current")["ds"]
    finally:
        if server is not None:
            server.stop()
    latencies = sorted(x for r in readers for x in r.latencies)
    errors = [e for r in readers for e in r.errors]
    if errors:
        print(f"# readers: {len(errors)} error(s), e.g. {errors[0]}")
    reads = {"rows": n_rows, "readers": n_readers, "reads": len(latencies),
             "errors": len(errors), "mixed_ds": sum(r.mixed for r in readers),
             "empty": sum(r.empty for r in readers),
             "p50_ms": 1000 * statistics.median(latencies) if latencies else None,
             "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies
             else None, "current_ds": ",".join(d.isoformat() for d in current)}
    return [{"step": "readers", "what": "publish, no readers (peer)", "rows": n_rows,
             "seconds": alone, "ratio_to_peer": 1.0},
            {"step": "readers", "what": f"publish with {n_readers} readers", "seconds": loaded,
             "ratio_to_peer": loaded / alone, **reads}]
