"""The nightly tasks. Each reads partitions ``<= ds``, writes what belongs to ``ds`` (or to a
new model version) and leaves a summary under ``lake/runs/ds=D/<task>.json``."""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from jobs.context import RunContext
from jobs.logs import get_logger, log_context
from pipelines import quality
from pipelines.rawfiles import MALFORMED, RawFileError, list_raw_files, read_raw_file
from pipelines.schema import EVENT_COLUMNS, EVENT_REQUIRED, ITEM_COLUMNS, ITEM_REQUIRED
from pipelines.storage import partition
from pipelines.validate import (
    check_castable,
    check_same_schema,
    concat_files,
    conform,
    validate_events,
    validate_items,
)
from pipelines.warehouse import AuditError

if TYPE_CHECKING:
    from pipelines.embed import Encoder

log = get_logger("tasks")


class MissingPartition(FileNotFoundError):
    pass


class UpstreamMissing(RuntimeError):
    """A task ran before the task it depends on wrote its output for this ``ds``."""


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


def validate(ctx: RunContext) -> dict:
    """Raw events and catalog rows of ``ds`` into clean and quarantine partitions.

    Runs the GX suites, records one ``recs.dq_results`` row per expectation, keeps the Data
    Docs under ``runs/ds=D/data_docs/`` and fails the day (writing no clean partition) when
    the quarantined share or the volume breaks its rule.
    """
    from pipelines.gx_runner import GxSession

    started = time.perf_counter()
    if not ctx.raw.exists("events", ctx.part):
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
            from pipelines.spark import spark_session

            spark = stack.enter_context(spark_session(ctx.settings.spark, "recs-validate"))
        session = GxSession("spark" if spark else "polars", Path(docs), spark)
        items, item_outcomes = validate_items(items_raw, ctx.ds, session)
        known = items.clean["item_id"] if prior is None else pl.concat(
            [prior["item_id"], items.clean["item_id"]])
        events, event_outcomes = validate_events(events_raw, ctx.ds, known.unique(),
                                                 accepted_ids, cfg, session)
        docs_index = _keep_docs(ctx, Path(docs))
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
    log.info("data docs: %s", docs_index)
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


def _keep_docs(ctx: RunContext, local: Path) -> str:
    """Copy the Data Docs site built in ``local`` to ``runs/ds=D/data_docs/``."""
    ctx.lake.remove("runs", ctx.part, "data_docs")
    for path in sorted(local.rglob("*")):
        if path.is_file():
            ctx.lake.write_bytes(path.read_bytes(), "runs", ctx.part, "data_docs",
                                 *path.relative_to(local).parts, quiet=True)
    return ctx.lake.url("runs", ctx.part, "data_docs", "index.html")


def aggregate(ctx: RunContext) -> dict:
    """Interaction, user and item features for ``ds`` on the configured engine, merged from
    daily summaries (built once per day) over the history window."""
    from jobs.features import ensure_daily, merged
    from pipelines.engines import open_engine

    started = time.perf_counter()
    _require(ctx, ("clean", "events", ctx.part, "part-0.parquet"), "validate")
    days = ctx.window("clean", "events", days=ctx.settings.features.history_days)
    with open_engine(ctx.settings) as engine:
        built = ensure_daily(ctx, engine, days)
        outputs = merged(ctx, engine, ctx.ds, days, ctx.catalog())
    for name, frame in outputs.items():
        ctx.lake.write_parquet(frame, "features", ctx.part, f"{name}.parquet")
    log.info("features on %s from %d days (%d summaries built): %s", ctx.settings.engine,
             len(days), built, ", ".join(f"{k}={v.height}" for k, v in outputs.items()))
    return ctx.summary("aggregate", seconds=time.perf_counter() - started,
                       engine=ctx.settings.engine, days=len(days), daily_built=built,
                       rows_out={k: v.height for k, v in outputs.items()})


def embed(ctx: RunContext) -> dict:
    """Embed item texts and user-history texts, reusing the cached vectors of unchanged texts,
    and move the user-interest memory of the users active on ``ds``."""
    from pipelines.embed import Encoder
    from pipelines.texts import item_texts, text_hash, user_texts

    started = time.perf_counter()
    _require(ctx, ("features", ctx.part, "users.parquet"), "aggregate")
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
    # A rerun of this ds must not count its own cache entries as new work.
    if fresh.height or not ctx.lake.exists(*cache_parts, ctx.part):
        ctx.lake.write_parquet(fresh, *cache_parts, ctx.part, "part-0.parquet")
    interest = _update_interest(ctx, vectors["users"], encoder.cache_key)
    return ctx.summary("embed", model=encoder.cache_key, device=encoder.device,
                       precision=encoder.precision, batch_size=encoder.batch_size,
                       shards=cfg.shards, **counts, interest=interest,
                       seconds=time.perf_counter() - started)


def _encode(ctx: RunContext, encoder: Encoder, texts: pl.DataFrame) -> pl.DataFrame:
    """``text_hash, vector`` for ``texts``: in this process, or in shards on Dask workers."""
    from pipelines.embed import vectors_frame

    shards = ctx.settings.embed.shards
    if shards == 1 or texts.height < 2:
        return vectors_frame(texts["text_hash"], encoder.encode(texts["text"].to_list()))
    from pipelines.embed_shards import embedding_client, encode_sharded

    with embedding_client(ctx.settings.dask, encoder.device) as client:
        vecs = encode_sharded(client, texts["text"].to_list(), ctx.settings.embed,
                              encoder.device, shards, encoder.dim)
    return vectors_frame(texts["text_hash"], vecs)


def _update_interest(ctx: RunContext, history: pl.DataFrame, model: str) -> dict:
    """The interest memory after ``ds`` from the state of the latest earlier day."""
    from pipelines.interest import empty_state, update_interest

    dim = history.schema["vector"].size
    earlier = [d for d in ctx.lake.partitions("embeddings", "interest") if d < ctx.ds]
    prev = empty_state(dim)
    if earlier:
        stored = ctx.lake.read_parquet("embeddings", "interest", partition(earlier[-1]),
                                       "part-0.parquet")
        if stored.height and stored["model"][0] != model:
            log.warning("interest memory of %s was built with %s, not %s: it starts afresh",
                        earlier[-1], stored["model"][0], model)
        else:
            prev = stored.drop("model")
    active = ctx.read_partitions("clean/events", [ctx.ds])["user_id"].unique()
    today = history.filter(pl.col("user_id").is_in(active.implode())).select("user_id",
                                                                            "vector")
    state = update_interest(prev, today, ctx.settings.embed.interest_alpha, ctx.ds)
    ctx.lake.write_parquet(state.with_columns(pl.lit(model).alias("model")),
                           "embeddings", "interest", ctx.part, "part-0.parquet")
    return {"users": state.height, "updated": today.height,
            "from": earlier[-1].isoformat() if earlier else None}


def _model_version(ctx: RunContext, interactions_bytes: bytes) -> tuple[str, dict]:
    lineage = {
        "ds": ctx.ds.isoformat(),
        "inputs": {
            f"features/{ctx.part}/interactions.parquet":
                hashlib.sha256(interactions_bytes).hexdigest(),
        },
        "model": asdict(ctx.settings.model),
        "features": json.loads(json.dumps(asdict(ctx.settings.features))),
    }
    digest = hashlib.sha256(json.dumps(lineage, sort_keys=True).encode()).hexdigest()[:10]
    return f"{ctx.ds:%Y%m%d}-{digest}", lineage


def train(ctx: RunContext) -> dict:
    """Fit ALS on all interactions up to ``ds`` and register it as a model version."""
    from pipelines.als import build_matrix, fit_als

    started = time.perf_counter()
    _require(ctx, ("features", ctx.part, "interactions.parquet"), "aggregate")
    raw = ctx.lake.read_bytes("features", ctx.part, "interactions.parquet")
    interactions = pl.read_parquet(io.BytesIO(raw))
    version, lineage = _model_version(ctx, raw)
    data = build_matrix(interactions)
    factors = fit_als(data, ctx.settings.model)
    base = ("models", version)
    ctx.lake.write_parquet(pl.DataFrame({"user_id": data.user_ids}), *base, "users.parquet")
    ctx.lake.write_parquet(pl.DataFrame({"item_id": data.item_ids}), *base, "items.parquet")
    for name, array in (("user_factors", factors.user), ("item_factors", factors.item)):
        buf = io.BytesIO()
        np.save(buf, array)
        ctx.lake.write_bytes(buf.getvalue(), *base, f"{name}.npy")
    ctx.lake.write_json(lineage, *base, "lineage.json")
    log.info("model %s: %d users x %d items, %d factors", version, data.matrix.shape[0],
             data.matrix.shape[1], factors.user.shape[1])
    return ctx.summary("train", model_version=version, users=int(data.matrix.shape[0]),
                       items=int(data.matrix.shape[1]), nnz=int(data.matrix.nnz),
                       seconds=time.perf_counter() - started)


def evaluate(ctx: RunContext) -> dict:
    """Fit on the features as of ``ds - holdout`` and score ALS and popularity on the days
    after it."""
    from jobs.features import ensure_daily, merged
    from pipelines.engines import open_engine
    from pipelines.evaluate import candidate_lists, holdout_truth, score_lists

    started = time.perf_counter()
    _require(ctx, ("clean", "events", ctx.part, "part-0.parquet"), "validate")
    cutoff = ctx.ds - timedelta(days=ctx.settings.eval.holdout_days)
    history = ctx.settings.features.history_days
    all_days = ctx.window("clean", "events", days=history + ctx.settings.eval.holdout_days)
    train_days = [d for d in all_days if cutoff - timedelta(days=history) < d <= cutoff]
    test_days = [d for d in all_days if d > cutoff]
    empty = pl.DataFrame(schema={"model": pl.String, "metric": pl.String, "k": pl.Int32,
                                 "value": pl.Float64})
    metrics, truth, n_train = empty, pl.DataFrame(schema={"user_id": pl.String}), 0
    if train_days and test_days:
        with open_engine(ctx.settings) as engine:
            ensure_daily(ctx, engine, train_days)
            train = merged(ctx, engine, cutoff, train_days, ctx.catalog())
        test_events = ctx.read_partitions("clean/events", test_days)
        truth = holdout_truth(test_events, train["interactions"], ctx.settings)
        n_train = train["interactions"].height
        if truth.height:
            interest, item_vectors = _vectors_as_of(ctx, cutoff)
            lists = candidate_lists(train["interactions"], train["items"], truth, ctx.settings,
                                    interest, item_vectors)
            metrics = score_lists(lists, truth, ctx.settings.eval.k)
    if metrics.is_empty():
        log.warning("no held-out interactions of known users and items: nothing to evaluate")
    ctx.lake.write_parquet(metrics, "runs", ctx.part, "metrics.parquet")
    ctx.lake.write_json(metrics.to_dicts(), "runs", ctx.part, "metrics.json")
    for row in metrics.filter(pl.col("metric").is_in(["recall", "ndcg"])).iter_rows(named=True):
        log.info("%-10s %s@%d = %.4f", row["model"], row["metric"], row["k"], row["value"])
    return ctx.summary("evaluate", seconds=time.perf_counter() - started,
                       cutoff=cutoff.isoformat(), train_pairs=n_train,
                       test_users=truth["user_id"].n_unique(), test_pairs=truth.height)


def _vectors_as_of(ctx: RunContext, cutoff: date) -> tuple[pl.DataFrame | None,
                                                            pl.DataFrame | None]:
    """The interest memory and item vectors of the cut-off day, when the embed task ran then."""
    parts = ("embeddings", "interest", partition(cutoff), "part-0.parquet")
    items = ("embeddings", "items", partition(cutoff), "part-0.parquet")
    if not (ctx.lake.exists(*parts) and ctx.lake.exists(*items)):
        log.info("no embeddings for %s: the embedding model is not evaluated", cutoff)
        return None, None
    return (ctx.lake.read_parquet(*parts).select("user_id", "vector"),
            ctx.lake.read_parquet(*items).select("item_id", "vector"))


def precompute(ctx: RunContext) -> dict:
    """Top-N per active user from the day's model, with a reason per row, into staging."""
    from pipelines.als import Factors
    from pipelines.reasons import explain
    from pipelines.recommend import als_lists, popularity_ranking

    started = time.perf_counter()
    _require(ctx, ("runs", ctx.part, "train.json"), "train")
    _require(ctx, ("embeddings", "items", ctx.part, "part-0.parquet"), "embed")
    version = ctx.lake.read_json("runs", ctx.part, "train.json")["model_version"]
    base = ("models", version)
    factors = Factors(
        user=np.load(io.BytesIO(ctx.lake.read_bytes(*base, "user_factors.npy"))),
        item=np.load(io.BytesIO(ctx.lake.read_bytes(*base, "item_factors.npy"))),
    )
    model_users = ctx.lake.read_parquet(*base, "users.parquet")["user_id"]
    model_items = ctx.lake.read_parquet(*base, "items.parquet")["item_id"]
    interactions = ctx.lake.read_parquet("features", ctx.part, "interactions.parquet")
    user_feats = ctx.lake.read_parquet("features", ctx.part, "users.parquet")
    active = user_feats.filter(
        pl.col("days_since_last") <= ctx.settings.features.active_days)["user_id"]
    catalog = ctx.catalog()
    available = catalog.filter(pl.col("available"))["item_id"]
    n = ctx.settings.serve.top_n
    seen = interactions.select("user_id", "item_id") if ctx.settings.serve.exclude_seen else None
    lists = als_lists(factors, model_users, model_items, active, n, seen, available)
    item_vecs = ctx.lake.read_parquet("embeddings", "items", ctx.part, "part-0.parquet")
    lists = explain(lists, interactions, item_vecs, catalog)
    item_pop = ctx.lake.read_parquet("features", ctx.part, "items.parquet")
    popular = popularity_ranking(item_pop, available, n)
    ctx.lake.write_parquet(lists, "staging", ctx.part, "recommendations.parquet")
    ctx.lake.write_parquet(popular, "staging", ctx.part, "popular.parquet")
    log.info("%d lists (%d rows) for %d active users; %d popular items", lists["user_id"]
             .n_unique(), lists.height, active.len(), popular.height)
    return ctx.summary("precompute", model_version=version, active_users=active.len(),
                       users=lists["user_id"].n_unique(), rows=lists.height,
                       seconds=time.perf_counter() - started)


def publish(ctx: RunContext) -> dict:
    """Audit the staged lists and publish them, with metrics and the run record, atomically."""
    from pipelines.warehouse import RunBatch

    started = time.perf_counter()
    _require(ctx, ("staging", ctx.part, "recommendations.parquet"), "precompute")
    _require(ctx, ("runs", ctx.part, "metrics.parquet"), "evaluate")
    version = ctx.lake.read_json("runs", ctx.part, "precompute.json")["model_version"]
    catalog = ctx.catalog()
    batch = RunBatch(
        ds=ctx.ds, run_id=ctx.run_id, model_version=version,
        recommendations=ctx.lake.read_parquet("staging", ctx.part, "recommendations.parquet"),
        popular=ctx.lake.read_parquet("staging", ctx.part, "popular.parquet"),
        metrics=ctx.lake.read_parquet("runs", ctx.part, "metrics.parquet"),
        catalog=catalog.select("item_id", "available"),
        seen=ctx.lake.read_parquet("features", ctx.part, "interactions.parquet")
        .select("user_id", "item_id") if ctx.settings.serve.exclude_seen
        else pl.DataFrame(schema={"user_id": pl.String, "item_id": pl.String}),
        top_n=ctx.settings.serve.top_n,
        started_at=_run_started(ctx),
        finished_at=datetime.now(UTC),
    )
    rows = ctx.warehouse().publish(batch)
    log.info("published %d rows for %s (model %s)", rows, ctx.ds, version)
    return ctx.summary("publish", rows=rows, model_version=version,
                       seconds=time.perf_counter() - started)


def _run_started(ctx: RunContext) -> datetime:
    """When the run's validate task began (kept for the run record, never as a data cut-off)."""
    if not ctx.lake.exists("runs", ctx.part, "validate.json"):
        return datetime.now(UTC)
    return datetime.fromisoformat(ctx.lake.read_json("runs", ctx.part, "validate.json")
                                  ["started_at"])


def _require(ctx: RunContext, parts: tuple[str, ...], task: str) -> None:
    if not ctx.lake.exists(*parts):
        raise UpstreamMissing(
            f"{ctx.lake.url(*parts)} is missing: run the '{task}' task for {ctx.ds} first")


# Failures whose message says all an operator needs (the file, the column, the numbers).
EXPECTED_FAILURES: tuple[type[BaseException], ...] = (
    MissingPartition, UpstreamMissing, RawFileError, quality.DataQualityError, AuditError,
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


def run_task(name: str, ctx: RunContext) -> dict:
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; tasks are {', '.join(TASKS)}")
    with log_context(task=name, ds=ctx.ds.isoformat(), run_id=ctx.run_id):
        log.info("start")
        summary = TASKS[name](ctx)
        log.info("done in %.1fs", summary.get("seconds", 0.0))
        return summary


def record_failure(ctx: RunContext, task: str, error: BaseException) -> None:
    """Mark the run failed in ``recs.pipeline_runs``; published data is left as it was."""
    message = f"{task} failed: {type(error).__name__}: {error}"[:2000]
    ctx.warehouse().record_run(ctx.run_id, ctx.ds, "failed", None, datetime.now(UTC), message)
