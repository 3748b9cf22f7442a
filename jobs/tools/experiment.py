"""Offline comparison of the published lists with every baseline on a public dataset, through
the pipeline's own tasks: ``recs experiment movielens|amazon``.

The dataset is landed as raw days and every day is validated. At each cut-off ``D`` the nightly
flow runs once, as ``recs run --ds D`` on a lake whose history was only validated; then the
lists published for ``D`` (the popular list for users without one) and the lists of every
baseline of the model trained for ``D`` are scored on what happened after ``D``:

- MovieLens (100K or latest-small): the last twelve month ends with 60 days of data before
  them and 30 after (or ``--cutoff`` days); test users are the users known at ``D`` with new
  positive ratings in the 30 days after it; NDCG@10. One row per cut-off, with the published
  lists' lift over that cut-off's best baseline and its paired 95 % bootstrap interval over
  the test users, then the mean (the lift there is over the baseline best on average).
  Days older than the first cut-off's history window are not landed (their catalog rows land
  on the first day kept): no task reads them.
- Amazon Industrial & Scientific: the protocol of the literature, each user's last item held
  out (``D`` is the day before it) and a seeded 10 % of the items never seen before it (cold);
  hit@20 for users whose held-out item is warm, and for those whose item is cold, in the same
  lists, with the published lists' lift over plain ALS (warm) and content similarity (cold).

Settings are the defaults (or ``--config``) but for those that fit a public dataset: every day
is taken as it lands (``accept_anomalies``: these sets swing far more than a production stream),
retention keeps every published day, no weekly fine-tune, and the workspace's stores.

With ``--finetune`` each cut-off's night embeds with an encoder fine-tuned, as the finetune
task does (``[finetune]`` settings, the CPU caps without a GPU), on the clean days up to the
cut-off, instead of the frozen one: the same table, frozen against fine-tuned.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from jobs.context import RunContext
from jobs.flow import run_flow
from jobs.logs import get_logger
from jobs.rawdata import write_days
from jobs.tasks import run_task
from pipelines.core import catalog as cat
from pipelines.core.contracts import RawDay
from pipelines.core.settings import Settings, replace

log = get_logger("experiment")

AMAZON_END = date(2026, 10, 31)
AMAZON_COLD_SHARE = 0.10
HORIZON_DAYS = 30
CUTOFFS = 12  # the last this many month ends, by default
PUBLISHED = "published"


def experiment_settings(base: Settings, root: Path) -> Settings:
    return replace(
        base, raw_root=str(root / "validated" / "raw"),
        lake_root=str(root / "validated" / "lake"),
        warehouse=f"duckdb:///{root / 'validated' / 'warehouse.duckdb'}",
        validate={"accept_anomalies": True, "data_docs": False},
        serve={"retention_days": 0},
        # No weekly fine-tune inside a cut-off's night: its encoder would only be adopted the
        # night after. --finetune compares the encoders instead.
        finetune={"every_days": 0},
    )


def land_and_validate(settings: Settings, days, label: str) -> list[date]:
    """Write the raw days (once) and validate every day not validated yet."""
    ctx = RunContext(settings, date.max, "-")
    if not ctx.raw.days(cat.RAW_EVENTS):
        write_days(settings.raw_root, days, "parquet")
    landed = ctx.raw.days(cat.RAW_EVENTS)
    done = set(ctx.lake.days(cat.CLEAN_EVENTS)) | set(ctx.lake.days(cat.VALIDATE_SUMMARY))
    started = time.perf_counter()
    for ds in landed:
        if ds not in done:
            run_task("validate", RunContext(settings, ds, f"{label}__{ds}"))
    log.info("%d days validated in %.0f s", len(landed), time.perf_counter() - started)
    return landed


def since(days: Iterable[RawDay], first: date) -> Iterator[RawDay]:
    """The days from ``first`` on, the catalog of the days before it landing on the first one:
    with a history window shorter than the gap, no task of the cut-offs reads the events
    before it, and the catalog as of every day is the same."""
    catalog = []
    for day in days:
        if day.ds < first:
            catalog.append(day.items)
            continue
        if catalog is not None:
            rows = pl.concat([*catalog, day.items])
            latest = rows.sort("updated_at", maintain_order=True).unique(
                "item_id", keep="last", maintain_order=True)
            day = RawDay(ds=day.ds, events=day.events, items=latest.sort("item_id"))
            catalog = None
        yield day


def tuned_encoder(validated: Settings, ds: date) -> Path:
    """An encoder fine-tuned as the finetune task does on the clean days up to the cut-off
    ``ds`` (every test day is after it), saved beside the workspace once per cut-off and
    ``[finetune]`` settings."""
    import hashlib
    import json

    from jobs.tasks.finetune import train_encoder

    cfg = validated.finetune.model_dump(mode="json")
    digest = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:8]
    out = (Path(validated.lake_root).parent.parent / "encoders"
           / f"{ds.isoformat()}-{cfg['method']}-{digest}")
    if not (out / "config.json").is_file():
        trained = train_encoder(RunContext(validated, ds, "experiment"), ds, out)
        if trained is None:
            raise RuntimeError(f"no pairs to fine-tune on up to {ds}")
        tuned, _ = trained
        log.info("fine-tuned for %s: %d pairs, %d steps, %.0f s, loss %.3f -> %.3f", ds,
                 tuned.pairs, tuned.steps, tuned.seconds, tuned.loss_first, tuned.loss_last)
    return out


def night(validated: Settings, ds: date, label: str, finetune: bool = False) -> Settings:
    """The nightly flow for ``ds`` in a fresh copy of the validated workspace (its raw days and
    validation outputs only, as after ``recs import`` and validating the history), so that
    every cut-off's run is independent of the others; with ``finetune``, embedding with an
    encoder fine-tuned up to ``ds`` instead of the frozen one. Returns the copy's settings."""
    encoder = tuned_encoder(validated, ds) if finetune else None
    root = Path(validated.lake_root).parent
    copy = root.parent / f"{root.name}-{ds.isoformat()}{'-tuned' if finetune else ''}"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(root / "raw", copy / "raw")
    for area in ("clean", "quarantine", "runs"):
        shutil.copytree(root / "lake" / area, copy / "lake" / area)
    settings = replace(validated, raw_root=str(copy / "raw"), lake_root=str(copy / "lake"),
                       warehouse=f"duckdb:///{copy / 'warehouse.duckdb'}")
    if encoder is not None:
        settings = replace(settings, embed={"model": str(encoder)})
    run_flow(RunContext(settings, ds, f"{label}__{ds}"))
    return settings


def month_ends(first: date, last: date, history_days: int = 60) -> list[date]:
    """Last days of months with ``history_days`` of data before and a horizon after."""
    out, day = [], first
    while day <= last:
        nxt = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
        end = nxt - timedelta(days=1)
        if (end - first).days >= history_days and end + timedelta(days=HORIZON_DAYS) <= last:
            out.append(end)
        day = nxt
    return out


def lift_over(lists: dict[str, pl.DataFrame], truth: pl.DataFrame, metric: str, k: int,
              baseline: str, resamples: int = 1000) -> dict[str, float | str]:
    """The published lists' lift over ``baseline`` on ``metric@k``, paired over the truth
    users, with its 95 % bootstrap interval."""
    from pipelines.evaluate.holdout import bootstrap_lift
    from pipelines.evaluate.metrics import PER_USER

    per_user = PER_USER[metric]
    published = per_user(lists[PUBLISHED], truth, k).sort("user_id")["value"].to_numpy()
    base = per_user(lists[baseline], truth, k).sort("user_id")["value"].to_numpy()
    lift, lo, hi = bootstrap_lift(published, base, resamples)
    return {"baseline": baseline, "lift": lift, "lift_lo": lo, "lift_hi": hi}


@dataclass(frozen=True)
class Scored:
    lists: dict[str, pl.DataFrame]  # model -> user_id, rank, item_id (the published ones too)
    truth: pl.DataFrame  # user_id, item_id
    decision: dict


def lists_after(settings: Settings, ds: date, truth_days: list[date], n: int) -> Scored:
    """The published lists of ``ds`` (popular list for known users without one) and every
    baseline's of the model trained for ``ds``, for the users known at ``ds`` with new
    positives in ``truth_days``."""
    from jobs.inputs import as_of, recommendable
    from jobs.tasks.train import day_model, load
    from pipelines.core.engines import open_engine
    from pipelines.evaluate.holdout import evaluation_lists, holdout_truth

    ctx = RunContext(settings, ds, "experiment")
    with open_engine(settings) as engine:
        train = as_of(ctx, engine, ds)
    events = ctx.read_days(cat.CLEAN_EVENTS, truth_days)
    truth = holdout_truth(events, train.interactions, recommendable(train), settings)
    lists = evaluation_lists(load(ctx, day_model(ctx)), truth, settings, n)
    wh = ctx.warehouse()
    published = wh.query("select user_id, rank, item_id from recs.recommendations where ds = ?",
                         [ds])
    popular = wh.query("select rank, item_id from recs.popular_items where ds = ?", [ds])
    without = truth.select("user_id").unique().join(published.select("user_id").unique(),
                                                    on="user_id", how="anti")
    fallback = without.join(popular, how="cross").select("user_id", "rank", "item_id")
    lists[PUBLISHED] = pl.concat([published, fallback.cast(published.schema)])
    decision = ctx.lake.read_dict(cat.DECISION, ds=ds)
    return Scored(lists=lists, truth=truth, decision=decision)


def movielens(settings: Settings, folder: Path, cutoffs: list[date] | None = None,
              finetune: bool = False) -> pl.DataFrame:
    """One row per cut-off: the test users, the published model and every list's NDCG@10 on
    the 30 days after; then the mean."""
    from pipelines.datasets.movielens import load_movielens, to_raw_days
    from pipelines.evaluate.metrics import ndcg_at_k
    from pipelines.model.retrieval import BASELINES

    ml = load_movielens(folder)
    last = ml.ratings["ts"].max().date()
    cutoffs = cutoffs or month_ends(ml.ratings["ts"].min().date(), last)[-CUTOFFS:]
    first = cutoffs[0] - timedelta(days=settings.features.history_days + HORIZON_DAYS)
    days = land_and_validate(settings, since(to_raw_days(ml), first), "ml")
    rows = []
    for ds in cutoffs:
        ds = max(d for d in days if d <= ds)
        run = night(settings, ds, "ml", finetune)
        after = [d for d in days if ds < d <= ds + timedelta(days=HORIZON_DAYS)]
        scored = lists_after(run, ds, after, 10)
        row = {"cutoff": ds.isoformat(), "test_users": scored.truth["user_id"].n_unique(),
               "published_model": scored.decision["published"]}
        row |= {m: ndcg_at_k(recs, scored.truth, 10) for m, recs in scored.lists.items()}
        best = max((m for m in BASELINES if m in row), key=row.__getitem__)
        row |= lift_over(scored.lists, scored.truth, "ndcg", 10, best)
        rows.append(row)
        log.info("cut-off %s: %s", ds, {k: (round(v, 4) if isinstance(v, float) else v)
                                       for k, v in row.items()})
    table = pl.DataFrame(rows)
    models = [c for c in table.columns if c in (PUBLISHED, "ranker", "ranker_explore",
                                                 *BASELINES)]
    mean = {"cutoff": "mean", "test_users": int(table["test_users"].sum()),
            "published_model": "", **{m: float(table[m].mean()) for m in models}}
    best = max((m for m in BASELINES if m in mean), key=mean.__getitem__)
    mean |= {"baseline": best, "lift": mean[PUBLISHED] / mean[best] if mean[best] else None,
             "lift_lo": None, "lift_hi": None}
    return pl.concat([table, pl.DataFrame([mean], schema=table.schema)])


def amazon(settings: Settings, folder: Path, finetune: bool = False) -> pl.DataFrame:
    """hit@20 of every list for users whose held-out last item is warm, and for those whose
    item is cold."""
    from pipelines.datasets.amazon import (
        cold_items,
        cold_summary,
        load_amazon_interactions,
        load_amazon_items,
        to_raw_days,
    )
    from pipelines.evaluate.metrics import hit_rate_at_k

    cold = cold_items(load_amazon_items(folder)["item_id"], AMAZON_COLD_SHARE, seed=0)
    log.info("cold items: %s", cold_summary(load_amazon_interactions(folder), AMAZON_END, cold,
                                            AMAZON_END))
    days = land_and_validate(settings, to_raw_days(folder, AMAZON_END, cold,
                                                   cold_from=AMAZON_END), "amazon")
    ds = days[-2]
    scored = lists_after(night(settings, ds, "amazon", finetune), ds, [days[-1]], 20)
    is_cold = pl.col("item_id").is_in(sorted(cold))
    groups = {"warm": scored.truth.filter(~is_cold), "cold": scored.truth.filter(is_cold)}
    rows = []
    for group, truth in groups.items():
        row = {"users": group, "test_users": truth["user_id"].n_unique(),
               "published_model": scored.decision["published"]}
        row |= {m: hit_rate_at_k(recs, truth, 20) for m, recs in scored.lists.items()}
        row |= lift_over(scored.lists, truth, "hit_rate", 20,
                         "als_plain" if group == "warm" else "content")
        rows.append(row)
    return pl.DataFrame(rows)


def run_experiment(dataset: str, workdir: Path, base: Settings, folder: Path,
                   cutoffs: list[date] | None = None, finetune: bool = False) -> pl.DataFrame:
    settings = experiment_settings(base, workdir)
    if dataset == "movielens":
        return movielens(settings, folder, cutoffs, finetune)
    return amazon(settings, folder, finetune)
