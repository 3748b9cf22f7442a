"""The nightly tasks. Each reads partitions ``<= ds``, writes what belongs to ``ds`` (or to a
new model version) and leaves a summary under ``lake/runs/ds=D/<task>.json``."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from jobs.context import RunContext
from jobs.logs import get_logger, log_context
from jobs.model_tasks import evaluate, train
from jobs.precompute import (
    collect_staged,
    precompute,
    precompute_shard,
    shard_summaries,
    shard_totals,
)
from jobs.preconditions import UpstreamMissing, require
from pipelines.core.contracts import EVENT_COLUMNS, EVENT_REQUIRED, ITEM_COLUMNS, ITEM_REQUIRED
from pipelines.core.errors import MissingPartition, QualityGateError
from pipelines.core.failpoints import failpoint
from pipelines.core.storage import partition
from pipelines.validate import quality
from pipelines.validate.rawfiles import MALFORMED, RawFileError, list_raw_files, read_raw_file
from pipelines.validate.rows import (
    check_castable,
    check_same_schema,
    concat_files,
    conform,
    validate_events,
    validate_items,
)
from pipelines.warehouse import AuditError

if TYPE_CHECKING:
    from pipelines.embed.encoder import Encoder

log = get_logger("tasks")



def _read_raw(ctx: RunContext, kind: str, columns: dict, required: tuple) -> tuple[
        pl.DataFrame, list[str], list[str]]:
    """A raw partition as one text frame; any file-level problem raises RawFileError."""
    files = [read_raw_file(ctx.raw, kind, ctx.ds, name)
             for name in list_raw_files(ctx.raw, kind, ctx.ds)]
    check_same_schema([(f.url, f.fmt, f.dtypes) for f in files], columns)
    frames, extra = [], set()
    for f in files:
        extra |= set(f.frame.columns) - set(columns) - {MALFORMED}
        conformed = conform(f.frame, columns, required, f.url)
        check_castable(conformed, f.url)
        frames.append(conformed)
    return concat_files(frames, columns), [f.url for f in files], sorted(extra)


def raw_partition_landed(ctx: RunContext) -> bool:
    """Whether ``raw/events/ds=D/`` exists (what the sensor waits for and validate needs)."""
    return ctx.raw.exists("events", ctx.part)


def validate(ctx: RunContext) -> dict:
    """Raw events and catalog rows of ``ds`` into clean and quarantine partitions.

    Runs the GX suites, records one ``recs.dq_results`` row per expectation, keeps the Data
    Docs under ``runs/ds=D/data_docs/`` and fails the day (writing no clean partition) when
    the quarantined share or the volume breaks its rule.
    """
    from pipelines.validate.gx_runner import GxSession

    started = time.perf_counter()
    if not raw_partition_landed(ctx):
        raise MissingPartition(f"{ctx.raw.url('events', ctx.part)}: the events partition "
                               f"for {ctx.ds} has not landed")
    cfg = ctx.settings.validate
    _require_validated_history(ctx)
    items_raw, item_files, item_extra = _read_raw(ctx, "items", ITEM_COLUMNS, ITEM_REQUIRED)
    events_raw, event_files, event_extra = _read_raw(ctx, "events", EVENT_COLUMNS, EVENT_REQUIRED)
    earlier = [d for d in ctx.lake.partitions("clean", "items") if d < ctx.ds]
    prior = ctx.read_partitions("clean/items", earlier, columns=["item_id"])
    accepted_days = ctx.window("clean", "events", days=ctx.settings.features.history_days,
                               include_ds=False)
    accepted = ctx.read_partitions("clean/events", accepted_days, columns=["event_id"])
    accepted_ids = accepted["event_id"] if accepted is not None else pl.Series([], dtype=pl.String)

    with tempfile.TemporaryDirectory() as docs, ExitStack() as stack:
        # On the Spark engine the suites run on GX's Spark data source; otherwise on pandas
        # (GX has no Dask data source). Both give the same verdicts.
        spark = None
        if ctx.settings.engine == "spark":
            from pipelines.core.spark import spark_session

            spark = stack.enter_context(spark_session(ctx.settings.spark, "recs-validate"))
        session = GxSession("spark" if spark else "polars",
                            Path(docs) if cfg.data_docs else None, spark)
        items, item_outcomes = validate_items(items_raw, ctx.ds, session)
        known = items.clean["item_id"] if prior is None else pl.concat(
            [prior["item_id"], items.clean["item_id"]])
        events, event_outcomes = validate_events(events_raw, ctx.ds, known.unique(),
                                                 accepted_ids, cfg, session)
        docs_index = _keep_docs(ctx, Path(docs) if cfg.data_docs else None)
    if events.n_raw != events.n_clean + events.n_quarantined + events.n_duplicates:
        raise RuntimeError(f"row accounting broken for {ctx.ds}: {events.n_raw} raw rows but "
                           f"{events.n_clean} clean + {events.n_quarantined} quarantined + "
                           f"{events.n_duplicates} duplicates")
    checks = [quality.quarantine_share(events.n_raw, events.n_quarantined, cfg),
              quality.volume(events.n_raw, _trailing_volumes(ctx), cfg)]
    dq = (quality.dq_rows("events", event_outcomes) + quality.dq_rows("items", item_outcomes)
          + quality.day_rows(checks))
    ctx.lake.write_parquet(pl.DataFrame(dq), "runs", ctx.part, "dq_results.parquet")
    ctx.warehouse().record_dq(ctx.run_id, ctx.ds, dq)
    for kind, verdict in (("events", events), ("items", items)):
        ctx.lake.write_parquet(verdict.quarantine, "quarantine", kind, ctx.part,
                               "part-0.parquet")
    failpoint("validate:quarantined")
    reasons = (
        events.quarantine.get_column("reasons").str.split(",").explode().value_counts(sort=True)
        .rows() if events.quarantine.height else []
    )
    for extra, kind in ((event_extra, "events"), (item_extra, "items")):
        if extra:
            log.warning("extra columns in raw %s ignored: %s", kind, ", ".join(extra))
    log.info("events: %d raw -> %d clean, %d quarantined, %d duplicates (%d files)",
             events.n_raw, events.n_clean, events.n_quarantined, events.n_duplicates,
             len(event_files))
    log.info("data docs: %s", docs_index or "off ([validate] data_docs = false)")
    summary = dict(
        events={"files": event_files, "raw": events.n_raw, "clean": events.n_clean,
                "quarantined": events.n_quarantined, "duplicates": events.n_duplicates,
                "reasons": dict(reasons), "extra_columns": event_extra},
        items={"files": item_files, "raw": items.n_raw, "clean": items.n_clean,
               "quarantined": items.n_quarantined, "extra_columns": item_extra},
        checks={c.name: {"success": c.success, **c.details} for c in checks},
        data_docs=docs_index,
    )
    try:
        accepted_failures = quality.enforce(checks, cfg.accept_anomalies)
    except quality.DataQualityError:
        # A rejected day leaves no clean partition behind, not even one of an earlier run.
        for kind in ("events", "items"):
            ctx.lake.remove("clean", kind, ctx.part)
        ctx.summary("validate", seconds=time.perf_counter() - started, rejected=True, **summary)
        raise
    if accepted_failures:
        log.warning("accepted despite: %s", "; ".join(accepted_failures))
    for kind, verdict in (("events", events), ("items", items)):
        ctx.lake.write_parquet(verdict.clean, "clean", kind, ctx.part, "part-0.parquet")
    return ctx.summary("validate", seconds=time.perf_counter() - started, rejected=False,
                       **summary)


def _require_validated_history(ctx: RunContext) -> None:
    """Earlier days must be validated first: the catalog and the accepted event ids of ``ds``
    come from them. Every raw catalog partition before ``ds`` counts, and every raw events
    partition in the history window; a day validate rejected counts as decided."""
    first = ctx.ds - timedelta(days=ctx.settings.features.history_days - 1)
    pending = set()
    for kind in ("items", "events"):
        for d in ctx.raw.partitions(kind):
            if d >= ctx.ds or (kind == "events" and d < first):
                continue
            if not (ctx.lake.exists("clean", kind, partition(d))
                    or ctx.lake.exists("runs", partition(d), "validate.json")):
                pending.add(d)
    if pending:
        days = sorted(pending)
        raise UpstreamMissing(
            f"{len(days)} earlier day(s) not validated yet ({days[0]} .. {days[-1]}): validate "
            f"them first, oldest first, so the catalog and the duplicate check of {ctx.ds} "
            "are complete")


def _trailing_volumes(ctx: RunContext) -> list[int]:
    """Raw event counts of the accepted days in the volume window before ``ds``."""
    days = ctx.window("runs", days=ctx.settings.validate.volume_window_days + 1,
                      include_ds=False)
    volumes = []
    for d in days:
        path = ("runs", f"ds={d}", "validate.json")
        if ctx.lake.exists(*path):
            info = ctx.lake.read_json(*path)
            if not info.get("rejected"):
                volumes.append(int(info["events"]["raw"]))
    return volumes


def _keep_docs(ctx: RunContext, local: Path | None) -> str | None:
    """Copy the Data Docs site built in ``local`` to ``runs/ds=D/data_docs/``; with none
    built, an earlier run's site of the day goes too (it no longer matches the verdicts)."""
    ctx.lake.remove("runs", ctx.part, "data_docs")
    if local is None:
        return None
    for path in sorted(local.rglob("*")):
        if path.is_file():
            ctx.lake.write_bytes(path.read_bytes(), "runs", ctx.part, "data_docs",
                                 *path.relative_to(local).parts, quiet=True)
    return ctx.lake.url("runs", ctx.part, "data_docs", "index.html")


def aggregate(ctx: RunContext) -> dict:
    """Interaction, user and item features for ``ds`` on the configured engine, merged from
    daily summaries (built once per day) over the history window."""
    from jobs.features import ensure_daily, merged
    from pipelines.core.engines import open_engine

    started = time.perf_counter()
    require(ctx, ("clean", "events", ctx.part, "part-0.parquet"), "validate")
    days = ctx.window("clean", "events", days=ctx.settings.features.history_days)
    with open_engine(ctx.settings) as engine:
        built = ensure_daily(ctx, engine, days)
        outputs = merged(ctx, engine, ctx.ds, days, ctx.catalog())
    for name, frame in outputs.items():
        ctx.lake.write_parquet(frame, "features", ctx.part, f"{name}.parquet")
        failpoint("aggregate:writing")
    log.info("features on %s from %d days (%d summaries built): %s", ctx.settings.engine,
             len(days), built, ", ".join(f"{k}={v.height}" for k, v in outputs.items()))
    return ctx.summary("aggregate", seconds=time.perf_counter() - started,
                       engine=ctx.settings.engine, days=len(days), daily_built=built,
                       rows_out={k: v.height for k, v in outputs.items()})


def embed(ctx: RunContext) -> dict:
    """Embed item texts and user-history texts, reusing the cached vectors of unchanged texts,
    and move the user-interest memory of the users active on ``ds``."""
    from pipelines.embed.encoder import Encoder
    from pipelines.embed.texts import item_texts, text_hash, user_texts

    started = time.perf_counter()
    require(ctx, ("features", ctx.part, "users.parquet"), "aggregate")
    cfg = ctx.settings.embed
    catalog = ctx.catalog()
    events = ctx.clean_events(ctx.settings.features.history_days)
    encoder = Encoder.load(cfg, ctx.settings.device)
    texts = {
        "items": item_texts(catalog, cfg.item_template).rename({"item_id": "key"}),
        "users": user_texts(events, catalog, cfg.history_k).rename({"user_id": "key"}),
    }
    for kind, frame in texts.items():
        fitted = pl.Series("text", encoder.fit(frame["text"].to_list()), dtype=pl.String)
        texts[kind] = frame.with_columns(fitted, text_hash(fitted).alias("text_hash"))

    cache_parts = ("embeddings", "cache", encoder.cache_key)
    cache_days = [d for d in ctx.lake.partitions(*cache_parts) if d <= ctx.ds]
    cached = ctx.read_partitions("/".join(cache_parts), cache_days)
    cached = (cached if cached is not None else pl.DataFrame(
        schema={"text_hash": pl.String, "vector": pl.Array(pl.Float32, encoder.dim)})
    ).unique("text_hash", keep="first", maintain_order=True)
    missing = (pl.concat([f.select("text", "text_hash") for f in texts.values()])
               .join(cached, on="text_hash", how="anti").unique("text_hash").sort("text_hash"))
    log.info("%d distinct texts to embed on %s (%s)", missing.height, encoder.device,
             encoder.precision)
    fresh = _encode(ctx, encoder, missing)
    table = pl.concat([cached, fresh])
    counts, vectors = {}, {}
    for kind, frame in texts.items():
        key = "item_id" if kind == "items" else "user_id"
        vectors[kind] = (frame.join(table, on="text_hash", how="left")
                         .select(pl.col("key").alias(key), "text_hash",
                                 pl.lit(encoder.cache_key).alias("model"), "vector")
                         .sort(key))
        ctx.lake.write_parquet(vectors[kind], "embeddings", kind, ctx.part, "part-0.parquet")
        new = frame["text_hash"].is_in(missing["text_hash"].implode()).sum()
        counts[kind] = {"texts": frame.height, "embedded": int(new),
                        "reused": frame.height - int(new)}
        failpoint("embed:vectors")
    # A rerun of this ds finds its own entries cached and embeds nothing: keep them, rather
    # than overwrite the day's cache partition with an empty one.
    if fresh.height or not ctx.lake.exists(*cache_parts, ctx.part):
        ctx.lake.write_parquet(fresh, *cache_parts, ctx.part, "part-0.parquet")
    interest = _update_interest(ctx, vectors["users"], encoder.cache_key)
    return ctx.summary("embed", model=encoder.cache_key, device=encoder.device,
                       precision=encoder.precision, batch_size=encoder.batch_size,
                       shards=cfg.shards, **counts, interest=interest,
                       seconds=time.perf_counter() - started)


def _encode(ctx: RunContext, encoder: Encoder, texts: pl.DataFrame) -> pl.DataFrame:
    """``text_hash, vector`` for ``texts``: in this process, or in shards on Dask workers."""
    from pipelines.embed.encoder import vectors_frame

    shards = ctx.settings.embed.shards
    if shards == 1 or texts.height < 2:
        return vectors_frame(texts["text_hash"], encoder.encode(texts["text"].to_list()))
    from pipelines.embed.shards import embedding_client, encode_sharded

    with embedding_client(ctx.settings.dask, encoder.device) as client:
        vecs = encode_sharded(client, texts["text"].to_list(), ctx.settings.embed,
                              encoder.device, shards, encoder.dim)
    return vectors_frame(texts["text_hash"], vecs)


def _update_interest(ctx: RunContext, history: pl.DataFrame, model: str) -> dict:
    """The interest memory after ``ds`` from the state of the latest earlier day.

    Users with events after that day (on ``ds`` when nights are consecutive; a skipped night's
    users too) move towards today's history vector. With no earlier state (the first run, or a
    new model) every user with a history starts at it.
    """
    from pipelines.embed.interest import empty_state, update_interest

    dim = history.schema["vector"].size
    earlier = [d for d in ctx.lake.partitions("embeddings", "interest") if d < ctx.ds]
    prev, since = empty_state(dim), None
    if earlier:
        stored = ctx.lake.read_parquet("embeddings", "interest", partition(earlier[-1]),
                                       "part-0.parquet")
        if stored.height and stored["model"][0] != model:
            log.warning("interest memory of %s was built with %s, not %s: it starts afresh",
                        earlier[-1], stored["model"][0], model)
        else:
            prev, since = stored.drop("model"), earlier[-1]
    if since is None:
        today = history.select("user_id", "vector")
    else:
        days = [d for d in ctx.lake.partitions("clean", "events") if since < d <= ctx.ds]
        active = ctx.read_partitions("clean/events", days, columns=["user_id"])["user_id"]
        today = history.filter(pl.col("user_id").is_in(active.unique().implode())).select(
            "user_id", "vector")
    state = update_interest(prev, today, ctx.settings.embed.interest_alpha, ctx.ds)
    ctx.lake.write_parquet(state.with_columns(pl.lit(model).alias("model")),
                           "embeddings", "interest", ctx.part, "part-0.parquet")
    return {"users": state.height, "updated": today.height,
            "from": since.isoformat() if since else None}


def publish(ctx: RunContext) -> dict:
    """Judge the model by its holdout numbers, write the run report, then audit the staged
    lists of every shard and publish them with metrics and the run record, atomically."""
    from pipelines.evaluate.gate import judge, lift
    from pipelines.serve.lists import seen_pairs
    from pipelines.warehouse import PublishRules, RunBatch

    started = time.perf_counter()
    staged = collect_staged(ctx)
    require(ctx, ("runs", ctx.part, "metrics.parquet"), "evaluate")
    version = staged.model_version
    metrics = ctx.lake.read_parquet("runs", ctx.part, "metrics.parquet")
    gate, serve = ctx.settings.gate, ctx.settings.serve
    warehouse = ctx.warehouse()
    previous = warehouse.published_metrics(ctx.ds, gate.metric, gate.k)
    verdict = judge(metrics, lift(previous, gate), gate)
    report = _write_report(ctx, version, metrics, verdict.to_dict())
    if not verdict.passed:
        warehouse.record_run(ctx.run_id, ctx.ds, "failed", _run_started(ctx),
                             datetime.now(UTC), f"quality gate: {verdict.reason}", report)
        raise QualityGateError(f"model {version} not published: {verdict.reason} "
                               "(force_publish overrides)")
    interactions = ctx.lake.read_parquet("features", ctx.part, "interactions.parquet")
    seen = seen_pairs(interactions, serve)
    batch = RunBatch(
        ds=ctx.ds, run_id=ctx.run_id, model_version=version,
        recommendations=staged.recommendations, popular=staged.popular, metrics=metrics,
        catalog=ctx.catalog().select("item_id", "title", "category", "available"),
        seen=seen if seen is not None else pl.DataFrame(
            schema={"user_id": pl.String, "item_id": pl.String}),
        active_users=staged.active_users,
        started_at=_run_started(ctx),
        finished_at=datetime.now(UTC),
        message=f"published; gate: {verdict.reason}",
        report=report,
    )
    rules = PublishRules(top_n=serve.top_n, min_user_coverage=serve.min_user_coverage,
                         retention_days=serve.retention_days)
    rows = warehouse.publish(batch, rules)
    ctx.lake.write_json({"ds": ctx.ds.isoformat(), "run_id": ctx.run_id,
                         "metrics": metrics.to_dicts(), "gate": verdict.to_dict()},
                        "models", version, "metrics.json", quiet=True)
    log.info("published %d rows for %s (model %s, %s); gate: %s", rows, ctx.ds, version,
             warehouse.dialect, verdict.reason)
    log.info("run report: %s", report)
    return ctx.summary("publish", rows=rows, model_version=version, gate=verdict.to_dict(),
                       warehouse=warehouse.dialect, report=report,
                       seconds=time.perf_counter() - started)


def _write_report(ctx: RunContext, version: str, metrics: pl.DataFrame, gate: dict) -> str:
    """The run's HTML report under ``runs/ds=D/report.html``; returns its URL."""
    from pipelines.evaluate.report import render_report

    summaries = {}
    for task in ("validate", "aggregate", "embed", "train", "evaluate", "precompute"):
        if ctx.lake.exists("runs", ctx.part, f"{task}.json"):
            summary = ctx.lake.read_json("runs", ctx.part, f"{task}.json")
            summary.pop("fusion", None)  # weights are in the registry, not volumes
            summaries[task] = summary
    if "precompute" not in summaries and (shards := shard_summaries(ctx)):
        summaries["precompute"] = shard_totals(shards)
    cold = None
    split = metrics.filter(pl.col("metric").is_in(["cold_recall", "warm_recall"]))
    if split.height:
        evaluated = summaries.get("evaluate", {})
        n_cold = int(evaluated.get("cold_test_pairs", 0))
        cold = (split.pivot(on="metric", index=["model", "k"], values="value")
                .with_columns(pl.lit(n_cold, dtype=pl.Int64).alias("n_cold_pairs"),
                              pl.lit(int(evaluated.get("test_pairs", 0)) - n_cold,
                                     dtype=pl.Int64).alias("n_warm_pairs")))
        if "cold_recall" not in cold.columns or "warm_recall" not in cold.columns:
            cold = None
    html = render_report(ctx.ds, ctx.run_id, version, metrics, summaries, cold, gate)
    ctx.lake.write_bytes(html.encode(), "runs", ctx.part, "report.html")
    return ctx.lake.url("runs", ctx.part, "report.html")


def _run_started(ctx: RunContext) -> datetime:
    """When the run's validate task began (kept for the run record, never as a data cut-off)."""
    if not ctx.lake.exists("runs", ctx.part, "validate.json"):
        return datetime.now(UTC)
    return datetime.fromisoformat(ctx.lake.read_json("runs", ctx.part, "validate.json")
                                  ["started_at"])


# Failures whose message says all an operator needs (the file, the column, the numbers).
EXPECTED_FAILURES: tuple[type[BaseException], ...] = (
    MissingPartition, UpstreamMissing, RawFileError, quality.DataQualityError, AuditError,
    QualityGateError,
)

TASKS: dict[str, Callable[[RunContext], dict]] = {
    "validate": validate,
    "aggregate": aggregate,
    "embed": embed,
    "train": train,
    "evaluate": evaluate,
    "precompute": precompute,
    "publish": publish,
}


def run_task(name: str, ctx: RunContext, shard: int | None = None) -> dict:
    """Run one task; ``shard``: only that user shard of precompute."""
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; tasks are {', '.join(TASKS)}")
    if shard is not None and name != "precompute":
        raise ValueError(f"--shard is for precompute, not {name}")
    with log_context(task=name if shard is None else f"{name}[{shard}]",
                     ds=ctx.ds.isoformat(), run_id=ctx.run_id):
        log.info("start")
        summary = TASKS[name](ctx) if shard is None else precompute_shard(ctx, shard)
        log.info("done in %.1fs", summary.get("seconds", 0.0))
        # The task is done but whoever runs it has not heard so: it will run it again.
        failpoint(f"{name}:done")
        return summary


def record_failure(ctx: RunContext, task: str, error: BaseException) -> None:
    """Mark the run failed in ``recs.pipeline_runs``; published data is left as it was."""
    message = f"{task} failed: {type(error).__name__}: {error}"[:2000]
    ctx.warehouse().record_run(ctx.run_id, ctx.ds, "failed", None, datetime.now(UTC), message)
