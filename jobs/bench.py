"""``make bench``: throughput of pipeline steps against a peer measured in the same run.

Figures are medians of several runs on the machine at hand; compare ratios, not absolutes,
across machines.
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path

import polars as pl

from jobs.bench_util import PeakMemory, median_seconds
from jobs.context import RunContext
from jobs.rawdata import write_days
from jobs.tasks import run_task
from pipelines.config import Settings
from pipelines.generate import GenerateSpec, generate
from pipelines.schema import EVENT_COLUMNS, EVENT_REQUIRED
from pipelines.validate import concat_files, conform, prepare_events, validate_events


def bench_validate(n_events: int, repeat: int) -> list[dict]:
    """Validating one day of ``n_events`` raw events: the full task (read, GX suites, verdicts,
    writes) and the GX validation alone, against the bare polars preparation as the floor."""
    spec = GenerateSpec(n_users=max(1000, n_events // 20), n_items=max(500, n_events // 50),
                        n_days=2, start=date(2026, 10, 1), events_per_day=n_events, seed=3)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = replace(Settings(), raw_root=str(root / "raw"), lake_root=str(root / "lake"),
                           warehouse=f"duckdb:///{root / 'wh.duckdb'}")
        settings = replace(settings, validate=replace(settings.validate, accept_anomalies=True))
        write_days(settings.raw_root, generate(spec), "parquet")
        day1, day2 = spec.start, date(2026, 10, 2)
        run_task("validate", RunContext(settings, day1, "bench"))
        ctx = RunContext(settings, day2, "bench")
        raw = ctx.raw.read_parquet("events", f"ds={day2}", "part-0.parquet")
        text = concat_files([conform(raw.select(pl.all().cast(pl.String)), EVENT_COLUMNS,
                                     EVENT_REQUIRED, "bench")], EVENT_COLUMNS)
        catalog = ctx.catalog()["item_id"]
        accepted = ctx.lake.read_parquet("clean", "events", f"ds={day1}", "part-0.parquet")[
            "event_id"]
        rows = text.height
        # Warm up imports and GX's registries so the first timed run is not an outlier.
        validate_events(text.head(100), day2, catalog, accepted, settings.validate)
        floor = median_seconds(lambda: prepare_events(text, catalog, accepted), repeat)
        gx = median_seconds(
            lambda: validate_events(text, day2, catalog, accepted, settings.validate), repeat)
        task = median_seconds(lambda: run_task("validate", ctx), repeat)
    return [
        {"step": "validate", "what": "polars preparation only (floor)", "rows": rows,
         "seconds": floor, "rows_per_s": rows / floor, "ratio_to_peer": 1.0},
        {"step": "validate", "what": "GX suites + verdicts", "rows": rows,
         "seconds": gx, "rows_per_s": rows / gx, "ratio_to_peer": gx / floor},
        {"step": "validate", "what": "whole task (read, GX, write, dq_results, docs)",
         "rows": rows, "seconds": task, "rows_per_s": rows / task,
         "ratio_to_peer": task / floor},
    ]


def bench_aggregate(n_events: int, repeat: int,
                    engines: tuple[str, ...] = ("polars", "spark", "dask"),
                    spark_memory: str = "") -> list[dict]:
    """Feature aggregation of 30 days holding ``n_events`` on each engine: the first night
    (every daily summary built) and a later night (summaries reused, only the merge)."""
    import shutil

    days = 30
    spec = GenerateSpec(n_users=max(1000, n_events // 50), n_items=max(500, n_events // 200),
                        n_days=days, start=date(2026, 9, 1), events_per_day=n_events // days,
                        malformed_share=0.0, seed=4)
    last = date(2026, 9, days)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "base"
        base = replace(Settings(), raw_root=str(root / "raw"), lake_root=str(root / "lake"),
                       warehouse=f"duckdb:///{root / 'wh.duckdb'}")
        base = replace(base, validate=replace(base.validate, accept_anomalies=True))
        if spark_memory:  # local mode: the driver's heap is all the memory Spark has
            base = replace(base, spark=replace(base.spark, driver_memory=spark_memory))
        write_days(base.raw_root, generate(spec), "parquet")
        for i in range(days):
            run_task("validate", RunContext(base, date(2026, 9, 1 + i), "bench"))
        n = RunContext(base, last, "bench").clean_events(days).height
        for engine in engines:
            first, later, peaks = [], [], []
            for r in range(repeat):
                copy = Path(tmp) / f"{engine}-{r}"
                shutil.copytree(root, copy)
                settings = replace(base, raw_root=str(copy / "raw"),
                                   lake_root=str(copy / "lake"), engine=engine)
                ctx = RunContext(settings, last, "bench")
                with PeakMemory() as memory:
                    t0 = time.perf_counter()
                    run_task("aggregate", ctx)
                    first.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                run_task("aggregate", ctx)
                later.append(time.perf_counter() - t0)
                peaks.append(memory.mib)
                shutil.rmtree(copy)
            for what, times in (("first night (all daily summaries)", first),
                                ("later night (merge only)", later)):
                seconds = statistics.median(times)
                rows.append({"step": f"aggregate/{engine}", "what": what, "rows": n,
                             "seconds": seconds, "rows_per_s": n / seconds,
                             "peak_mib": statistics.median(peaks)
                             if what.startswith("first") else None})
    floor = {r["what"]: r["seconds"] for r in rows if r["step"] == "aggregate/polars"}
    for r in rows:
        r["ratio_to_peer"] = r["seconds"] / floor[r["what"]] if floor else None
    return rows


def _embed(args: argparse.Namespace) -> list[dict]:
    from jobs.bench_embed import amazon_folder, bench_embed

    if not (amazon_folder() / "Scientific.item.json").is_file():
        print(f"# embed: skipped, no Amazon item texts in {amazon_folder()} "
              "(set RECS_AMAZON_DIR)")
        return []
    return bench_embed(args.texts, args.repeat, args.device)


def _load(args: argparse.Namespace) -> list[dict]:
    from jobs.bench_load import bench_load

    return bench_load(args.rows, args.repeat, postgres=args.postgres)


def _score(args: argparse.Namespace) -> list[dict]:
    from jobs.bench_score import bench_scoring

    return bench_scoring(args.users, args.items, 64, repeat=args.repeat,
                         device=args.device)["rows"]


BENCHES: dict[str, Callable[[argparse.Namespace], list[dict]]] = {
    "validate": lambda a: bench_validate(a.events, a.repeat),
    "aggregate": lambda a: bench_aggregate(a.events, a.repeat, tuple(a.engines.split(",")),
                                           a.spark_memory),
    "embed": _embed,
    "score": _score,
    "load": _load,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("benches", nargs="*", default=list(BENCHES), choices=list(BENCHES))
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--engines", default="polars,spark,dask",
                        help="aggregation engines to compare, comma-separated")
    parser.add_argument("--spark-memory", default="",
                        help="Spark driver memory for aggregation (default: [spark] setting)")
    parser.add_argument("--texts", type=int, default=512,
                        help="Amazon item texts to embed (../shared/data or $RECS_AMAZON_DIR)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--users", type=int, default=20_000,
                        help="users to score all items for (top-N bench)")
    parser.add_argument("--items", type=int, default=10_000, help="items of the top-N bench")
    parser.add_argument("--rows", type=int, default=1_000_000,
                        help="recommendation rows to load into each warehouse")
    parser.add_argument("--postgres", default=None,
                        help="PostgreSQL URL for the load bench (default: a throwaway server)")
    args = parser.parse_args()
    print(f"# {platform.processor() or platform.machine()}, {platform.python_version()}, "
          f"{__import__('os').cpu_count()} cores")
    rows = []
    for name in args.benches:
        rows += BENCHES[name](args)
    with pl.Config(tbl_rows=50, tbl_width_chars=200, fmt_str_lengths=80,
                   tbl_hide_dataframe_shape=True):
        table = pl.DataFrame(rows, infer_schema_length=None)
        print(table.with_columns(pl.col(c).round(3) for c in table.columns
                                 if table[c].dtype.is_float()))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the benchmark process: {peak_mb:.0f} MiB")


if __name__ == "__main__":
    main()
