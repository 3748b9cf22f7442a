"""The whole nightly run: wall time and peak memory of every task, at several scales.

A "night" is the steady state: the previous night has run (daily summaries and embeddings are
cached), then one more day is processed. Each workspace is prepared once and copied for every
timed repeat, so each repeat starts from the same state.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

from benchmarks.util import run_measured
from jobs.backfill import backfill
from jobs.context import RunContext, default_run_id
from jobs.rawdata import write_days
from jobs.tasks import TASKS, run_task
from pipelines.core import catalog as cat
from pipelines.core.settings import EmbedSettings, Settings, load_settings, replace
from pipelines.datasets.generate import GenerateSpec, generate

START = date(2026, 9, 1)


# Days whose volume swings are part of the data, not a fault, and every night published (a
# benchmark measures cost, not the gate); MovieLens as `recs experiment` runs it (its last
# days are thin). The synthetic histories are a few days long: the ranker learns from one-day
# labels there, so that each night trains it (on as many splits as the days allow).
BASE_CONFIG = ('device = "cpu"\n[validate]\naccept_anomalies = true\n'
               "[gate]\nforce_publish = true\n")
SYNTHETIC_CONFIG = BASE_CONFIG + "[ranker]\nlabel_days = 1\nsplit_step_days = 1\n"
MOVIELENS_CONFIG = BASE_CONFIG + "[eval]\nholdout_days = 14\n"


def _settings(root: Path, config: str) -> Settings:
    """Settings of a workspace; the file stays beside it for the task processes."""
    root.mkdir(parents=True)
    (root / "bench.toml").write_text(config)
    return replace(load_settings(root / "bench.toml", env={}), raw_root=str(root / "raw"),
                   lake_root=str(root / "lake"),
                   warehouse=f"duckdb:///{root / 'warehouse.duckdb'}")


def synthetic_workspace(root: Path, n_events: int, days: int) -> tuple[Settings, date]:
    """``n_events`` over ``days`` days of synthetic logs, every day but the last two validated
    and the day before the last run: the state before a night. Returns the night's ``ds``."""
    spec = GenerateSpec(n_users=max(500, n_events // 40), n_items=max(300, n_events // 200),
                        n_days=days, start=START, events_per_day=max(1, n_events // days),
                        seed=21)
    settings = _settings(root, SYNTHETIC_CONFIG)
    write_days(settings.raw_root, generate(spec), "parquet")
    last = START + timedelta(days=days - 1)
    _prepare(settings, last)
    return settings, last


def movielens_workspace(root: Path, folder: Path) -> tuple[Settings, date]:
    """MovieLens in the raw contract (one partition a day), prepared like the synthetic one."""
    from pipelines.datasets.movielens import load_movielens, to_raw_days

    settings = _settings(root, MOVIELENS_CONFIG)
    write_days(settings.raw_root, to_raw_days(load_movielens(folder)), "parquet")
    days = RunContext(settings, START, "-").raw.days(cat.RAW_EVENTS)
    _prepare(settings, days[-1])
    return settings, days[-1]


def _prepare(settings: Settings, last: date) -> None:
    """Validate the landed days before the night before ``last`` (a dataset may skip days),
    then run that night in full."""
    landed = RunContext(settings, last, "-").raw.days(cat.RAW_EVENTS)
    night_before = max(d for d in landed if d < last)
    backfill(replace(settings, validate={"data_docs": False}), None,
             night_before - timedelta(days=1), validate_only=True)
    _run_night(settings, night_before)


def _run_night(settings: Settings, ds: date) -> None:
    for task in TASKS:
        run_task(task, RunContext(settings, ds, default_run_id(ds)))


def _env(settings: Settings, config: Path, root: Path) -> dict[str, str]:
    return dict(os.environ, RECS_RAW_ROOT=str(root / "raw"), RECS_LAKE_ROOT=str(root / "lake"),
                RECS_WAREHOUSE=f"duckdb:///{root / 'warehouse.duckdb'}",
                RECS_DEVICE=settings.device, RECS_CONFIG=str(config),
                RECS_LOG_FILE=str(root / "recs.log"))


def time_night(settings: Settings, root: Path, ds: date, repeat: int) -> dict[str, dict]:
    """Median seconds and peak MiB of each task of the night ``ds`` over ``repeat`` copies.
    Each task runs as ``recs task`` in its own process, as under Airflow: its time includes
    starting Python and importing the stack (a few seconds), its memory is its own. The
    embed figures carry the texts the night embedded (of the last copy)."""
    seconds: dict[str, list[float]] = {t: [] for t in TASKS}
    peaks: dict[str, list[float]] = {t: [] for t in TASKS}
    embedded = 0
    for r in range(repeat):
        copy = root.parent / f"{root.name}-run{r}"
        shutil.copytree(root, copy)
        env = _env(settings, root / "bench.toml", copy)
        for task in TASKS:
            wall, peak = run_measured([sys.executable, "-m", "jobs.cli", "task", task, "--ds",
                                       ds.isoformat()], env)
            seconds[task].append(wall)
            peaks[task].append(peak)
        lake = RunContext(replace(settings, lake_root=str(copy / "lake")), ds, "-").lake
        info = lake.read_dict(cat.SUMMARIES["embed"], ds=ds)
        embedded = sum(info[kind]["embedded"] for kind in ("items", "users"))
        shutil.rmtree(copy)
    out = {t: {"seconds": statistics.median(seconds[t]), "peak_mib": statistics.median(peaks[t])}
           for t in TASKS}
    out["embed"]["texts"] = embedded
    return out


def _rows(scale: str, events: int, history: int, tasks: dict[str, dict]) -> list[dict]:
    rows = []
    for task, figures in tasks.items():
        figures = dict(figures)
        texts = figures.pop("texts", None)
        if texts:
            figures["texts_per_s"] = texts / figures["seconds"]
        rows.append({"step": f"night/{scale}", "what": task, "events": events,
                     "history_days": history, **figures})
    rows.append({"step": f"night/{scale}", "what": "whole night", "events": events,
                 "history_days": history,
                 "seconds": sum(f["seconds"] for f in tasks.values()),
                 "peak_mib": max(f["peak_mib"] for f in tasks.values())})
    rows.append({"step": f"night/{scale}", "what": "every task but embed", "events": events,
                 "history_days": history,
                 "seconds": sum(f["seconds"] for t, f in tasks.items() if t != "embed")})
    return rows


def bench_scale_night(events_per_day: int, days: int, users: int, items: int,
                      extra_config: str = "", repeat: int = 1) -> list[dict]:
    """A night at ``events_per_day`` over ``days`` days of history, on the defaults (and
    ``extra_config``, TOML tables appended to the settings): the validate-only backfill of the
    days before (``recs backfill`` in its own process), the earlier nights' aggregates (and
    embeddings of the days the night reads as of), the night before in full (caches warm),
    then the timed night, task by task. With another encoder than the default (a small
    one, so that a CPU embeds the night in minutes), a last row gives the default encoder's
    rate on a sample of the night's texts."""
    spec = GenerateSpec(n_users=users, n_items=items, n_days=days, start=START,
                        events_per_day=events_per_day, seed=21)
    last = START + timedelta(days=days - 1)
    label = f"{events_per_day:,} events a day"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        settings = _settings(root, BASE_CONFIG + extra_config)
        t0 = time.perf_counter()
        write_days(settings.raw_root, generate(spec), "parquet")
        print(f"# scale night: {days} days generated in {time.perf_counter() - t0:.0f}s",
              flush=True)
        before = last - timedelta(days=1)
        wall, peak = run_measured(
            [sys.executable, "-m", "jobs.cli", "backfill", "--to",
             (before - timedelta(days=1)).isoformat(), "--validate-only"],
            _env(settings, root / "bench.toml", root))
        print(f"# scale night: validate-only backfill in {wall:.0f}s", flush=True)
        lake = RunContext(settings, before, "-").lake
        validated = lake.days(cat.VALIDATE_SUMMARY)
        raw = sum(lake.read(cat.VALIDATE_SUMMARY, ds=d).events.raw for d in validated)
        t0 = time.perf_counter()
        rows = [{"step": f"night/{label}", "what": f"recs backfill --validate-only of "
                 f"{len(validated)} days", "events": raw, "history_days": len(validated),
                 "seconds": wall, "peak_mib": peak, "rows_per_s": raw / wall}]
        # A scheduled lake has every earlier night's features and embeddings; the night reads
        # them as of its ranker's training day and its evaluation's cut-off (each day's own
        # embed is minutes at this scale: only those days are embedded). It also has the
        # ALS and co-occurrence fits earlier nights' train kept (jobs.fits): the night
        # reads those of the training day's night (its own day and its training day).
        label, holdout = settings.ranker.label_days, settings.eval.holdout_days
        read_as_of = {last - timedelta(days=d) for d in (label, holdout, holdout + label)}
        for day in (d for d in validated if d < before):
            run_task("aggregate", RunContext(settings, day, default_run_id(day)))
            if day in read_as_of:
                run_task("embed", RunContext(settings, day, default_run_id(day)))
            if day == last - timedelta(days=label):
                run_task("train", RunContext(settings, day, default_run_id(day)))
        print(f"# scale night: earlier nights' features in {time.perf_counter() - t0:.0f}s",
              flush=True)
        for task in TASKS:
            t0 = time.perf_counter()
            run_task(task, RunContext(settings, before, default_run_id(before)))
            print(f"# scale night: the night before, {task} in {time.perf_counter() - t0:.0f}s",
                  flush=True)
        events = RunContext(settings, last, "-").clean_events(
            settings.features.history_days).height
        print("# scale night: prepared", flush=True)
        tasks = time_night(settings, root, last, repeat)
        rows += _rows(label, events, days, tasks)
        if settings.embed.model != EmbedSettings().model:
            rows.append(default_encoder_rate(settings, before, label, tasks["embed"]["texts"]))
    return rows


def default_encoder_rate(settings: Settings, ds: date, label: str, night_texts: int,
                         sample: int = 2000) -> dict:
    """texts/s of the default encoder on a seeded sample of the texts of ``ds``, for a scale
    night run with another (smaller) one: what the night's embed would take with it."""
    import polars as pl

    from pipelines.embed.cache import day_texts
    from pipelines.embed.encoder import Encoder

    cfg = EmbedSettings()
    encoder = Encoder.load(cfg, settings.device)
    ctx = RunContext(settings, ds, "-")
    texts = day_texts(encoder, ctx.catalog(), ctx.clean_events(settings.features.history_days),
                      cfg)
    chosen = pl.concat([f.select("text") for f in texts.values()])
    chosen = chosen.sample(min(sample, chosen.height), seed=0)["text"].to_list()
    encoder.encode(chosen[:encoder.batch_size])  # the weights load outside the timing
    t0 = time.perf_counter()
    encoder.encode(chosen)
    rate = len(chosen) / (time.perf_counter() - t0)
    return {"step": f"night/{label}", "events": night_texts,
            "what": f"embed with the default {cfg.model} on {len(chosen):,} of the texts "
                    f"(seconds: the night's {night_texts:,} texts at that rate)",
            "seconds": night_texts / rate, "texts_per_s": rate}


def _in_workspace(label: str, make: Callable[[Path], tuple[Settings, date]], repeat: int
                  ) -> tuple[dict[str, dict], int]:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        settings, ds = make(root)
        events = RunContext(settings, ds, "-").clean_events(
            settings.features.history_days).height
        prepared = time.perf_counter()
        figures = time_night(settings, root, ds, repeat), events
    print(f"# night {label}: prepared in {prepared - started:.0f}s, "
          f"{repeat} nights in {time.perf_counter() - prepared:.0f}s", flush=True)
    return figures


def bench_nights(scales: list[int], repeat: int, days: int = 30,
                 histories: tuple[int, ...] = (), history_events_per_day: int = 2000,
                 movielens: Path | None = None) -> list[dict]:
    """A night at each of ``scales`` events over ``days`` days; at ``histories`` days of
    ``history_events_per_day`` (how cost grows with history); and on MovieLens."""
    rows = []
    # (events, days) -> figures: a history point equal to a scale is measured once.
    measured: dict[tuple[int, int], tuple[dict[str, dict], int]] = {}

    def night(n_events: int, n_days: int) -> tuple[dict[str, dict], int]:
        if (n_events, n_days) not in measured:
            measured[n_events, n_days] = _in_workspace(
                f"{n_events:,} events over {n_days} days",
                lambda root: synthetic_workspace(root, n_events, n_days), repeat)
        return measured[n_events, n_days]

    for n in scales:
        tasks, events = night(n, days)
        rows += _rows(f"{n:,} events", events, days, tasks)
    for h in histories:
        tasks, events = night(h * history_events_per_day, h)
        rows += _rows(f"{h} days of history", events, h, tasks)
    if movielens is not None:
        tasks, events = _in_workspace(f"MovieLens {movielens.name}",
                                      lambda root: movielens_workspace(root, movielens), repeat)
        rows += _rows(f"MovieLens {movielens.name}", events, 90, tasks)
    return rows


def plot_nights(rows: list[dict], path: Path) -> None:
    """Seconds per task against events (scales) and against history days (histories)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_events, by_history) = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, key, label, kind in ((by_events, "events", "events in the history window", "events"),
                                 (by_history, "history_days", "days of history", "days of")):
        chosen = [r for r in rows if kind in r["step"] and r["what"] != "whole night"]
        for task in TASKS:
            points = sorted((r[key], r["seconds"]) for r in chosen if r["what"] == task)
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=task)
        if key == "events":
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("seconds (median)")
        ax.grid(True, alpha=0.3)
    by_events.set_title("a night's tasks as the data grows")
    by_history.set_title("a night's tasks as history grows (same events a day)")
    by_history.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
