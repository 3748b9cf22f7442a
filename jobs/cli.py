"""``recs``: the command line of the pipeline (see README, "Command line")."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from jobs.logs import cli_levels, get_logger, setup_logging
from pipelines.core.errors import ConfigError, RecsError
from pipelines.core.settings import Settings, load_settings

log = get_logger("cli")


def say(line: str) -> None:
    """A line on the console (and in the log file)."""
    from jobs.console import console

    console.info(line)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        "engine": getattr(args, "engine", None),
        "device": getattr(args, "device", None),
        "trainer": getattr(args, "trainer", None),
        "serve.top_n": getattr(args, "top_n", None),
        "validate.accept_anomalies": getattr(args, "accept_anomalies", None) or None,
        "gate.force_publish": getattr(args, "force_publish", None) or None,
    }
    return load_settings(args.config, overrides=overrides)


def cmd_run(args: argparse.Namespace) -> int:
    from jobs.context import RunContext, default_run_id
    from jobs.flow import run_flow

    ctx = RunContext(_settings(args), args.ds, args.run_id or default_run_id(args.ds))
    run_flow(ctx)
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from jobs.backfill import backfill
    from jobs.console import progress_bars

    with progress_bars() as progress:
        out = backfill(_settings(args), args.start, args.end, args.validate_only, args.rerun,
                       progress)
    say(f"backfill to {args.end}: {len(out.validated)} day(s) validated, {len(out.ran)} "
        f"night(s) run, {len(out.skipped)} already done (--rerun to redo them), in "
        f"{out.seconds:.0f} s")
    if out.data_docs:
        say(f"data docs of those days: {out.data_docs}")
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    from jobs.tasks.validate import render_site
    from pipelines.core import catalog as cat
    from pipelines.core.catalog import Lake
    from pipelines.core.storage import Store

    settings = _settings(args)
    lake = Lake(Store(settings.lake_root))
    days = [d for d in lake.days(cat.DQ_RESULTS)
            if (args.start is None or d >= args.start) and (args.end is None or d <= args.end)]
    index = render_site(lake, settings.validate, days)
    if index is None:
        raise RecsError(f"no validated day {_range(args.start, args.end)} under "
                        f"{lake.url(cat.DQ_RESULTS)}: nothing to render")
    say(f"data docs of {len(days)} validated day(s) ({days[0]} .. {days[-1]}): {index}")
    return 0


def _range(start: date | None, end: date | None) -> str:
    return f"from {start or 'the first'} to {end or 'the last'}"


def cmd_task(args: argparse.Namespace) -> int:
    from jobs.context import RunContext, default_run_id
    from jobs.tasks import run_task

    ctx = RunContext(_settings(args), args.ds, args.run_id or default_run_id(args.ds))
    run_task(args.name, ctx, shard=args.shard)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from jobs.rawdata import write_days
    from pipelines.datasets.generate import GenerateSpec, generate

    spec = GenerateSpec(
        n_users=args.users, n_items=args.items, n_days=args.days, start=args.start,
        events_per_day=args.events_per_day, malformed_share=args.malformed_share,
        seed=args.seed,
    )
    out = args.out or _settings(args).raw_root
    n_days, n_events = write_days(out, generate(spec), args.format)
    say(f"wrote {n_days} days, {n_events:,} events to {out}")
    return 0


def cmd_import_movielens(args: argparse.Namespace) -> int:
    from jobs.rawdata import write_days
    from pipelines.datasets.movielens import load_movielens, to_raw_days

    out = args.out or _settings(args).raw_root
    n_days, n_events = write_days(out, to_raw_days(load_movielens(Path(args.folder))), "parquet")
    say(f"wrote {n_days} days, {n_events:,} events from {args.folder} to {out}; next: "
        "recs backfill --to <day before the first night> --validate-only --accept-anomalies "
        "(MovieLens days swing past the volume rule)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from jobs.tools.demo import run_demo

    return run_demo(Path(args.workdir), days=args.days, use_airflow=args.airflow)


def cmd_airflow(args: argparse.Namespace) -> int:
    from jobs.tools.local_airflow import run_local_airflow

    home = Path(args.home or os.environ.get("AIRFLOW_HOME") or ".airflow")
    return run_local_airflow(Path(args.workdir), home, port=args.port, nights=args.nights)


def cmd_tune(args: argparse.Namespace) -> int:
    from jobs.context import RunContext
    from jobs.tools.tune import TuneError, tune

    ctx = RunContext(_settings(args), args.ds, f"tune__{args.ds.isoformat()}")
    try:
        tune(ctx, n_trials=args.trials, timeout=args.timeout,
             out=Path(args.out) if args.out else None)
    except TuneError as exc:
        print(f"recs: tune: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    """The effective settings as TOML (file, environment and defaults merged), or the JSON
    schema of the settings file."""
    import json

    if args.schema:
        from pipelines.core.settings import settings_schema

        print(json.dumps(settings_schema(), indent=2, sort_keys=True))
        return 0
    import tomli_w

    print(tomli_w.dumps(_settings(args).model_dump(mode="json")), end="")
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    import polars as pl

    from jobs.tools.experiment import run_experiment

    workdir = Path(args.workdir.replace("<dataset>", args.dataset))
    table = run_experiment(args.dataset, workdir, _settings(args), Path(args.folder),
                           args.cutoff or None, args.finetune)
    with pl.Config(tbl_rows=100, tbl_cols=30, tbl_width_chars=250, float_precision=4,
                   tbl_hide_dataframe_shape=True):
        print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recs", description=__doc__)
    parser.add_argument("--config", help="TOML settings file (default: $RECS_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="every log record on the console, not only one line per task "
                             "(they always go to $RECS_LOG_FILE, default recs.log)")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_run_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--ds", type=_date, required=True, help="logical date YYYY-MM-DD")
        p.add_argument("--run-id", help="run id to record (default: recs__<ds>)")
        p.add_argument("--engine", help="feature engine (overrides RECS_ENGINE)")
        p.add_argument("--device", help="auto, cpu or cuda (overrides RECS_DEVICE)")
        p.add_argument("--top-n", type=int, help="list length per user")
        p.add_argument("--trainer", help="implicit or spark_als (overrides RECS_TRAINER)")
        p.add_argument("--accept-anomalies", action="store_true",
                       help="take a day that breaks the quarantine-share or volume rule")
        p.add_argument("--force-publish", action="store_true",
                       help="publish even if the quality gate refuses the model")

    p = sub.add_parser("run", help="the whole nightly flow for one date, without Airflow")
    with_run_flags(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("backfill", help="the nightly flow, or validation alone, for every landed "
                       "day of a range, oldest first; resumable")
    p.add_argument("--from", dest="start", type=_date,
                   help="first day (default with --validate-only: the first landed day)")
    p.add_argument("--to", dest="end", type=_date, required=True, help="last day")
    p.add_argument("--validate-only", action="store_true",
                   help="validate the days, run nothing else")
    p.add_argument("--rerun", action="store_true", help="run days that are already done again")
    p.add_argument("--engine", help="feature engine (overrides RECS_ENGINE)")
    p.add_argument("--device", help="auto, cpu or cuda (overrides RECS_DEVICE)")
    p.add_argument("--trainer", help="implicit or spark_als (overrides RECS_TRAINER)")
    p.add_argument("--accept-anomalies", action="store_true",
                   help="take days that break the quarantine-share or volume rule")
    p.set_defaults(func=cmd_backfill)

    p = sub.add_parser("docs", help="render one Great Expectations Data Docs site of the "
                       "validated days of a range, from their stored verdicts")
    p.add_argument("--from", dest="start", type=_date, help="first day (default: the first)")
    p.add_argument("--to", dest="end", type=_date, help="last day (default: the last)")
    p.set_defaults(func=cmd_docs)

    from jobs.tasks import TASKS

    p = sub.add_parser("task", help="one task of the flow (what each Airflow task calls)")
    p.add_argument("name", choices=list(TASKS))
    p.add_argument("--shard", type=int, help="precompute only: score this user shard "
                   "(0 .. serve.shards - 1), as a mapped Airflow task does")
    with_run_flags(p)
    p.set_defaults(func=cmd_task)

    p = sub.add_parser("generate", help="synthetic raw logs in the raw-input contract")
    p.add_argument("--out", help="raw root to write (default: RECS_RAW_ROOT / config)")
    p.add_argument("--users", type=int, default=500)
    p.add_argument("--items", type=int, default=300)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--start", type=_date, default=date(2026, 10, 1))
    p.add_argument("--events-per-day", type=int, default=1000)
    p.add_argument("--malformed-share", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--format", choices=["parquet", "csv", "jsonl"], default="parquet")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("airflow", help="a local Airflow (UI, scheduler, dag-processor, "
                       "triggerer) on 127.0.0.1 with this DAG and the demo data; Ctrl-C stops it")
    p.add_argument("--workdir", default="demo", help="the demo data's folder")
    p.add_argument("--home", help="AIRFLOW_HOME (default: $AIRFLOW_HOME, else .airflow)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--nights", type=int, default=3,
                   help="last days of the demo data left for runs from the UI")
    p.set_defaults(func=cmd_airflow)

    p = sub.add_parser("import", help="import a public dataset into the raw-input contract")
    imp = p.add_subparsers(dest="dataset", required=True)
    m = imp.add_parser("movielens", help="MovieLens 100K or latest-small folder")
    m.add_argument("folder")
    m.add_argument("--out", help="raw root to write (default: RECS_RAW_ROOT / config)")
    m.set_defaults(func=cmd_import_movielens)

    p = sub.add_parser("demo", help="demo data, the nightly flow for a few days, a report")
    p.add_argument("--workdir", default="demo")
    p.add_argument("--days", type=int, default=3, help="nightly runs at the end of the data")
    p.add_argument("--airflow", action=argparse.BooleanOptionalAction, default=False,
                   help="run each night through `airflow dags test` (default: in process)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("experiment",
                       help="the published lists against every baseline on a public dataset")
    p.add_argument("dataset", choices=["movielens", "amazon"])
    p.add_argument("folder", help="ml-100k or ml-latest-small folder, or amazon-scientific")
    p.add_argument("--workdir", default="experiments/<dataset>",
                   help="where its raw days, lake and warehouse go")
    p.add_argument("--cutoff", type=_date, action="append",
                   help="movielens: a cut-off day (repeatable; default: every month end with "
                        "60 days before it and 30 after)")
    p.add_argument("--finetune", action="store_true",
                   help="embed each cut-off with an encoder fine-tuned on the days up to it")
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("config", help="the effective settings as TOML, or their JSON schema")
    p.add_argument("--schema", action="store_true", help="print the settings' JSON schema")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("tune", help="search ALS and ranker settings on the days before --ds")
    p.add_argument("--ds", type=_date, required=True,
                   help="last day the search may read; its new pairs are the target")
    p.add_argument("--trials", type=int, default=20, help="trials, the current config first")
    p.add_argument("--out", help="TOML file for the best [model] and [ranker] "
                                 "(default: tuned-<ds>.toml)")
    p.add_argument("--timeout", type=float, help="start no trial after this many seconds")
    p.set_defaults(func=cmd_tune)
    return parser


LOG_FILE_ENV, DEFAULT_LOG_FILE = "RECS_LOG_FILE", "recs.log"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level, console_level = cli_levels(args.verbose)
    setup_logging(level, log_file=os.environ.get(LOG_FILE_ENV, DEFAULT_LOG_FILE) or None,
                  console_level=console_level)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"recs: configuration error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        # The pipeline's own errors explain themselves; anything else gets its traceback.
        log.error("%s: %s", type(exc).__name__, exc, exc_info=not isinstance(exc, RecsError))
        return 1


if __name__ == "__main__":
    sys.exit(main())
