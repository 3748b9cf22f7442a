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
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from benchmarks.util import PeakMemory, median_seconds
from jobs.backfill import backfill
from jobs.context import RunContext
from jobs.rawdata import write_days
from jobs.tasks import run_task
from pipelines.core import catalog as cat
from pipelines.core.contracts import EVENT_COLUMNS, EVENT_REQUIRED
from pipelines.core.settings import Settings, replace
from pipelines.datasets.generate import GenerateSpec, generate
from pipelines.validate.gx_runner import GxSession
from pipelines.validate.polars_suite import PolarsSession
from pipelines.validate.rows import concat_files, conform, prepare_events, validate_events

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def bench_validate(n_events: int, repeat: int) -> list[dict]:
    """Validating one day of ``n_events`` raw events against the bare polars preparation of
    the same rows (the floor): the suites with their verdicts on each evaluator, and the whole
    task (read, suites, verdicts, writes, dq_results) as a backfill runs it (no Data Docs), as
    a nightly run does (the day's Data Docs) and with GX itself as the evaluator."""
    spec = GenerateSpec(n_users=max(1000, n_events // 20), n_items=max(500, n_events // 50),
                        n_days=2, start=date(2026, 10, 1), events_per_day=n_events, seed=3)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = replace(Settings(), raw_root=str(root / "raw"), lake_root=str(root / "lake"),
                           warehouse=f"duckdb:///{root / 'wh.duckdb'}")
        settings = replace(settings, validate={"accept_anomalies": True, "data_docs": False})
        write_days(settings.raw_root, generate(spec), "parquet")
        day1, day2 = spec.start, date(2026, 10, 2)
        run_task("validate", RunContext(settings, day1, "bench"))
        ctx = RunContext(settings, day2, "bench")
        raw = pl.read_parquet(ctx.raw.url(cat.RAW_EVENTS, ds=day2) + "/part-0.parquet")
        text = concat_files([conform(raw.select(pl.all().cast(pl.String)), EVENT_COLUMNS,
                                     EVENT_REQUIRED, "bench")], EVENT_COLUMNS)
        catalog = ctx.catalog()["item_id"]
        accepted = ctx.lake.read(cat.CLEAN_EVENTS, ds=day1)["event_id"]
        rows = text.height
        cfg = settings.validate

        def suites(session_type: type) -> Callable[[], object]:
            return lambda: validate_events(text, day2, catalog, accepted, cfg, session_type())

        def task(**change: object) -> Callable[[], object]:
            changed = RunContext(replace(settings, validate=change), day2, "bench")
            return lambda: run_task("validate", changed)

        # Warm up imports and GX's registries so the first timed run is not an outlier.
        validate_events(text.head(100), day2, catalog, accepted, cfg, GxSession())
        timed = [
            ("polars preparation only (floor)",
             lambda: prepare_events(text, catalog, accepted)),
            ("suites + verdicts, polars translation", suites(PolarsSession)),
            ("suites + verdicts, GX on pandas (reference)", suites(GxSession)),
            ("whole task, polars, no Data Docs (a backfill's day)", task()),
            ("whole task, polars, with the day's Data Docs (a nightly run)",
             task(data_docs=True)),
            ("whole task, GX on pandas ([validate] evaluator = \"gx\")",
             task(evaluator="gx")),
        ]
        seconds = {what: median_seconds(fn, repeat) for what, fn in timed}
    floor = seconds["polars preparation only (floor)"]
    return [{"step": "validate", "what": what, "rows": rows, "seconds": s,
             "rows_per_s": rows / s, "ratio_to_peer": s / floor,
             "share_of_floor": floor / s if s != floor else None}
            for what, s in seconds.items()]


def bench_backfill(folder: Path, repeat: int) -> list[dict]:
    """``recs backfill --validate-only`` of every landed day of MovieLens 100K: the whole
    command in its own process (process start and imports included) and the backfill alone,
    with its one Data Docs site."""
    import os
    import sys

    from benchmarks.util import run_measured
    from jobs.tasks.validate import render_site
    from pipelines.datasets.movielens import load_movielens, to_raw_days

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        raw = str(root / "raw")
        days = list(to_raw_days(load_movielens(folder)))
        n_days, n_events = write_days(raw, days, "parquet")
        last = days[-1].ds
        walls, peaks, inside, docs = [], [], [], []
        for r in range(repeat):
            lake, wh = root / f"lake-{r}", root / f"wh-{r}.duckdb"
            env = dict(os.environ, RECS_RAW_ROOT=raw, RECS_LAKE_ROOT=str(lake),
                       RECS_WAREHOUSE=f"duckdb:///{wh}", RECS_CONFIG="",
                       RECS_LOG_FILE=str(root / "recs.log"))
            wall, peak = run_measured([sys.executable, "-m", "jobs.cli", "backfill", "--to",
                                       last.isoformat(), "--validate-only",
                                       "--accept-anomalies"], env)
            walls.append(wall)
            peaks.append(peak)
            # In this process: the same backfill again (--rerun), beyond process start.
            settings = replace(Settings(), raw_root=raw, lake_root=str(lake),
                               warehouse=f"duckdb:///{wh}",
                               validate={"accept_anomalies": True})
            t0 = time.perf_counter()
            out = backfill(settings, None, last, validate_only=True, rerun=True)
            inside.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            render_site(RunContext(settings, last, "bench").lake, settings.validate,
                        out.validated)
            docs.append(time.perf_counter() - t0)
    for what, times, peak in (
            ("recs backfill --validate-only (own process, with its Data Docs)", walls,
             statistics.median(peaks)),
            ("the backfill alone, in a warm process (with its Data Docs)", inside, None),
            ("its Data Docs site alone (every day)", docs, None)):
        seconds = statistics.median(times)
        rows.append({"step": "validate/backfill", "what": what, "days": n_days,
                     "rows": n_events, "seconds": seconds, "seconds_per_day": seconds / n_days,
                     "peak_mib": peak})
    return rows


def bench_aggregate(n_events: int, repeat: int,
                    engines: tuple[str, ...] = ("polars", "spark", "dask"),
                    spark_memory: str = "", days: int = 30, later: bool = True) -> list[dict]:
    """Feature aggregation of ``days`` days holding ``n_events`` on each engine: the first
    night (every daily summary built) and, with ``later`` (always on polars), a later night
    (summaries reused, only the merge)."""
    import shutil

    spec = GenerateSpec(n_users=max(1000, n_events // 50), n_items=max(500, n_events // 200),
                        n_days=days, start=date(2026, 9, 1), events_per_day=n_events // days,
                        malformed_share=0.0, seed=4)
    last = spec.start + timedelta(days=days - 1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "base"
        base = replace(Settings(), raw_root=str(root / "raw"), lake_root=str(root / "lake"),
                       warehouse=f"duckdb:///{root / 'wh.duckdb'}")
        base = replace(base, validate=replace(base.validate, accept_anomalies=True,
                                              data_docs=False))
        if spark_memory:  # local mode: the driver's heap is all the memory Spark has
            base = replace(base, spark=replace(base.spark, driver_memory=spark_memory))
        write_days(base.raw_root, generate(spec), "parquet")
        backfill(base, None, last, validate_only=True)
        n = RunContext(base, last, "bench").clean_events(days).height
        for engine in engines:
            first: list[float] = []
            merge: list[float] = []
            peaks: list[float] = []
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
                if later or engine == "polars":
                    t0 = time.perf_counter()
                    run_task("aggregate", ctx)
                    merge.append(time.perf_counter() - t0)
                peaks.append(memory.mib)
                shutil.rmtree(copy)
            for what, times in (("first night (all daily summaries)", first),
                                ("later night (merge only)", merge)):
                if not times:
                    continue
                seconds = statistics.median(times)
                rows.append({"step": f"aggregate/{engine}", "what": what, "rows": n,
                             "history_days": days,
                             "seconds": seconds, "rows_per_s": n / seconds,
                             "peak_mib": statistics.median(peaks)
                             if what.startswith("first") else None})
    floor = {r["what"]: r["seconds"] for r in rows if r["step"] == "aggregate/polars"}
    for r in rows:
        r["ratio_to_peer"] = r["seconds"] / floor[r["what"]] if r["what"] in floor else None
    return rows


def _movielens(step: str) -> Path | None:
    """MovieLens 100K beside the clone, or None (the step says it is skipped)."""
    folder = SHARED_DATA / "ml-100k"
    if not folder.is_dir():
        print(f"# {step}: skipped, MovieLens 100K not found in {folder}")
        return None
    return folder


def _backfill(args: argparse.Namespace) -> list[dict]:
    folder = _movielens("backfill")
    return bench_backfill(folder, args.repeat) if folder else []


def _scale(args: argparse.Namespace) -> list[dict]:
    from benchmarks.nights import bench_scale_night

    extra = args.scale_config.read_text() if args.scale_config else ""
    return bench_scale_night(args.scale_events_per_day, args.scale_days, args.scale_users,
                             args.scale_items, extra)


def _embed(args: argparse.Namespace) -> list[dict]:
    from benchmarks.embed import amazon_folder, bench_embed

    if not (amazon_folder() / "Scientific.item.json").is_file():
        print(f"# embed: skipped, no Amazon item texts in {amazon_folder()} "
              "(set RECS_AMAZON_DIR)")
        return []
    return bench_embed(args.texts, args.repeat, args.device)


def _load(args: argparse.Namespace) -> list[dict]:
    from benchmarks.load import bench_load

    return bench_load(args.rows, args.repeat, postgres=args.postgres)


def _readers(args: argparse.Namespace) -> list[dict]:
    from benchmarks.readers import bench_readers

    return bench_readers(args.reader_rows, args.readers, url=args.postgres)


def _score(args: argparse.Namespace) -> list[dict]:
    from benchmarks.score import bench_scoring

    return bench_scoring(args.users, args.items, 64, repeat=args.repeat,
                         device=args.device)["rows"]


def _als(args: argparse.Namespace) -> list[dict]:
    from benchmarks.als import bench_als

    folder = _movielens("als")
    return bench_als(folder, args.repeat) if folder else []


def _nights(args: argparse.Namespace) -> list[dict]:
    from benchmarks.nights import bench_nights, plot_nights

    movielens = SHARED_DATA / "ml-100k"
    if args.movielens_night and not movielens.is_dir():
        print(f"# night: MovieLens 100K skipped, not found in {movielens}")
    rows = bench_nights(args.scales, args.repeat, days=args.days, histories=args.histories,
                        history_events_per_day=args.history_events_per_day,
                        movielens=movielens if args.movielens_night and movielens.is_dir()
                        else None)
    if args.plot:
        plot_nights(rows, args.plot)
    return rows


def _rank(args: argparse.Namespace) -> list[dict]:
    from benchmarks.rank import bench_rank

    return bench_rank(args.scales[-1], args.days, args.repeat)


BENCHES: dict[str, Callable[[argparse.Namespace], list[dict]]] = {
    "validate": lambda a: bench_validate(a.validate_events, a.repeat),
    "backfill": _backfill,
    "aggregate": lambda a: bench_aggregate(a.events, a.repeat, tuple(a.engines.split(",")),
                                           a.spark_memory, a.aggregate_days,
                                           a.aggregate_later),
    "als": _als,
    "embed": _embed,
    "score": _score,
    "load": _load,
    "readers": _readers,
    "night": _nights,
    "rank": _rank,
    "scale": _scale,
}

# What each step compares with, for the report.
NOTES = {
    "validate": "One day of raw events. Peer: the bare polars preparation of the same rows "
                "(the floor: no expectation suites, no writes); `ratio_to_peer` = seconds / "
                "the floor's. The polars translation and GX give the same verdicts and "
                "dq_results (tests/contract/test_validation_evaluators.py). "
                "**validate/backfill**: `recs backfill --validate-only` of MovieLens 100K's "
                "days, one Data Docs site for all of them at the end.",
    "aggregate": "Feature aggregation of a history of synthetic events, from one definition on "
                 "each engine (identical outputs, tested). Peer: polars. The first night "
                 "builds every daily summary; a later night builds one and merges. "
                 "`ratio_to_peer` = seconds / polars' seconds.",
    "als": "MovieLens 100K, first 90 % of ratings in time for training, NDCG@10 on the later "
           "ratings >= 4. Same factors, iterations and regularisation (mapped onto Spark's "
           "loss). Peer: Spark MLlib ALS in local mode on the same cores; `ratio_to_peer` = "
           "seconds / Spark's seconds.",
    "embed": "Amazon Industrial & Scientific item texts, all-MiniLM-L6-v2. Peer: a naive "
             "loop (input order, fixed batches of 32, fp32); `ratio_to_peer` = seconds / "
             "the naive loop's. Floor: the encoder's FLOPs on the unpadded tokens at the rate "
             "of a 2048 x 2048 matrix product on the same device and threads and precision; "
             "`share_of_floor` = the floor's seconds / the pipeline's. The fine-tune rows: "
             "`[finetune]` defaults, each text paired with the next, `rows` = pairs seen.",
    "score": "Top-100 for every user, seen items excluded. Peer: implicit's batch "
             "`recommend`; `ratio_to_peer` = seconds / implicit's seconds. Floor: the bare "
             "matrix product plus argpartition with nothing excluded; `share_of_floor` = the "
             "floor's seconds / the path's.",
    "load": "Recommendation rows into each warehouse. Peer: `executemany` on the same "
            "connection; `ratio_to_peer` = rows/s over executemany's. Floor (PostgreSQL): "
            "COPY of pre-encoded bytes; `share_of_floor` = the publish path's rows/s over it.",
    "readers": "PostgreSQL readers, each a thread with its own connection, querying random "
               "users' top 10 from `recommendations_current` in a loop during a publish of "
               "the next day (from 1 s before it to its end). Peer: the same publish with "
               "no readers; `ratio_to_peer` = seconds / the peer's. `errors`: reads that "
               "raised; "
               "`mixed_ds`: reads whose rows came from two days; `empty`: users with a list "
               "on both days who got none (all three: target 0).",
    "rank": "The published lists of every user of the largest night scale, on the model of "
            "its night before. Peer: ALS top-N (one product and a partial sort per block); "
            "`ratio_to_peer` = seconds / ALS's. Floor: every generator's scores for those "
            "users, nothing ranked; `share_of_floor` = the floor's seconds / the ranker's.",
    "night": "A whole night (the previous night already ran, so caches are warm), each task "
             "as `recs task` in its own process as under Airflow: seconds include starting "
             "Python and importing the stack; memory is the task process's peak RSS.",
}

# `make bench` (under 15 minutes on 2 cores) and `make bench-full`.
PROFILES = {
    # Under 15 minutes on 2 cores: small sizes, where each engine's and task's fixed costs
    # show; the history series shares its 5-day point with the smallest scale.
    "quick": {"events": 100_000, "validate_events": 1_000_000, "aggregate_days": 5,
              "aggregate_later": False, "texts": 128,
              "users": 20_000, "items": 10_000, "rows": 300_000,
              "scales": [5_000, 10_000, 20_000], "days": 5, "histories": [5, 20],
              "history_events_per_day": 1_000, "movielens_night": False},
    "full": {"events": 1_000_000, "validate_events": 1_000_000, "aggregate_days": 30,
             "aggregate_later": True,
             "texts": 2_048, "users": 200_000, "items": 50_000, "rows": 3_000_000,
             "scales": [100_000, 1_000_000, 10_000_000], "days": 30, "histories": [7, 30, 90],
             "history_events_per_day": 10_000, "movielens_night": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("benches", nargs="*",
                        help=f"the steps to measure: {', '.join(BENCHES)} (default: all)")
    parser.add_argument("--profile", choices=list(PROFILES), default="quick",
                        help="sizes: quick (`make bench`) or full (`make bench-full`); "
                             "the flags below override single sizes")
    parser.add_argument("--events", type=int)
    parser.add_argument("--validate-events", type=int, help="raw events of the validated day")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--engines", default="polars,spark,dask",
                        help="aggregation engines to compare, comma-separated")
    parser.add_argument("--aggregate-days", type=int,
                        help="days of history the aggregation bench spreads --events over")
    parser.add_argument("--aggregate-later", action=argparse.BooleanOptionalAction,
                        help="also time a later night (merge only) on Spark and Dask")
    parser.add_argument("--spark-memory", default="",
                        help="Spark driver memory for aggregation (default: [spark] setting)")
    parser.add_argument("--texts", type=int,
                        help="Amazon item texts to embed (../shared/data or $RECS_AMAZON_DIR)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--users", type=int, help="users to score all items for (top-N bench)")
    parser.add_argument("--items", type=int, help="items of the top-N bench")
    parser.add_argument("--rows", type=int,
                        help="recommendation rows to load into each warehouse")
    parser.add_argument("--postgres", default=None,
                        help="PostgreSQL URL for the load and readers benches (default: a "
                             "throwaway server)")
    parser.add_argument("--readers", type=int, default=32,
                        help="concurrent PostgreSQL readers of the readers bench")
    parser.add_argument("--reader-rows", type=int, default=1_000_000,
                        help="rows of the day published under the readers")
    parser.add_argument("--scales", type=lambda v: [int(x) for x in v.split(",") if x],
                        help="events of the whole-night bench, comma-separated")
    parser.add_argument("--days", type=int, help="days of history of the scales")
    parser.add_argument("--histories", type=lambda v: [int(x) for x in v.split(",") if x],
                        help="days of history of the history-length series")
    parser.add_argument("--history-events-per-day", type=int)
    parser.add_argument("--movielens-night", action=argparse.BooleanOptionalAction,
                        help="a night on MovieLens 100K (validating its 214 days takes "
                             "minutes; on in the full profile)")
    parser.add_argument("--scale-events-per-day", type=int, default=1_000_000,
                        help="the scale night (`scale`, not in a profile): events a day")
    parser.add_argument("--scale-days", type=int, default=30, help="... days of history")
    parser.add_argument("--scale-users", type=int, default=200_000, help="... users")
    parser.add_argument("--scale-items", type=int, default=50_000, help="... items")
    parser.add_argument("--scale-config", type=Path,
                        help="... TOML appended to the benchmark's settings (a model, a device)")
    parser.add_argument("--write", type=Path, help="write the report (BENCHMARKS.md) here")
    parser.add_argument("--plot", type=Path,
                        help="PNG of the night's cost (default: beside --write)")
    args = parser.parse_args()
    # The scale night takes an hour or more on 2 cores: only when asked for by name.
    args.benches = args.benches or [b for b in BENCHES if b != "scale"]
    if unknown := set(args.benches) - set(BENCHES):
        parser.error(f"unknown step(s) {', '.join(sorted(unknown))}; steps: {', '.join(BENCHES)}")
    for key, value in PROFILES[args.profile].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.write and args.plot is None:
        args.plot = args.write.with_name("benchmarks-night.png")
    print(f"# {platform.processor() or platform.machine()}, {platform.python_version()}, "
          f"{__import__('os').cpu_count()} cores, profile {args.profile}")
    rows = []
    for name in args.benches:
        started = time.perf_counter()
        rows += BENCHES[name](args)
        print(f"# {name}: {time.perf_counter() - started:.0f}s", flush=True)
    with pl.Config(tbl_rows=100, tbl_width_chars=200, fmt_str_lengths=60,
                   tbl_hide_dataframe_shape=True):
        table = pl.DataFrame(rows, infer_schema_length=None)
        print(table.with_columns(pl.col(c).round(3) for c in table.columns
                                 if table[c].dtype.is_float()))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the benchmark process: {peak_mb:.0f} MiB")
    if args.write:
        from benchmarks.report import write_report

        write_report(args.write, rows, args.repeat, NOTES,
                     args.plot if "night" in args.benches else None)
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
