"""The model tasks: train the hybrid and register it, and evaluate every model on the holdout."""

from __future__ import annotations

import hashlib
import io
import json
import time
from datetime import timedelta

import polars as pl

from jobs.context import RunContext
from jobs.logs import get_logger
from jobs.preconditions import require
from pipelines.core.failpoints import failpoint
from pipelines.core.storage import partition
from pipelines.model.hybrid import INPUT_COLUMNS, AsOf

log = get_logger("tasks")


def frame_digest(frame: pl.DataFrame) -> str:
    """sha256 of the frame's content, the same whichever engine computed it: columns by name,
    integers as Int64, floats to 12 significant digits (engines may differ in the last bit of a
    mean), in one chunk (the bytes of an IPC file depend on how rows are split into batches)."""
    canon = frame.select(
        pl.col(c).round_sig_figs(12).cast(pl.Float64) if t.is_float()
        else pl.col(c).cast(pl.Int64) if t.is_integer() else pl.col(c)
        for c, t in sorted(frame.schema.items()))
    buf = io.BytesIO()
    canon.rechunk().write_ipc(buf, compression="uncompressed")
    return hashlib.sha256(buf.getvalue()).hexdigest()


def _lineage(ctx: RunContext, current: AsOf,
             validation: tuple[AsOf, pl.DataFrame] | None) -> dict:
    """The ``ds``, the clean event partitions in the window with their hashes, and a digest of
    the columns the fit read from each of its inputs and those of its validation split."""
    days = ctx.window("clean", "events", days=ctx.settings.features.history_days)
    inputs = {f"clean/events/{partition(d)}": hashlib.sha256(
        ctx.lake.read_bytes("clean", "events", partition(d), "part-0.parquet")).hexdigest()
        for d in days}
    frames = {}
    for prefix, asof in (("", current), ("validation_", validation and validation[0])):
        for name, columns in INPUT_COLUMNS.items():
            frame = getattr(asof, name) if asof is not None else None
            if frame is not None:
                frames[prefix + name] = frame.select(columns)
    if validation is not None:
        frames["validation_truth"] = validation[1]
    return {"ds": ctx.ds.isoformat(), "partitions": inputs,
            "frames": {k: frame_digest(v) for k, v in frames.items()}}


def _config(ctx: RunContext) -> dict:
    """The settings a fit depends on, with the ALS backend as resolved on this worker (the GPU
    and the Spark master give other factors)."""
    from jobs.hybrid_inputs import als_backend

    s = ctx.settings
    return json.loads(json.dumps({
        "trainer": s.trainer, "backend": als_backend(s), "model": s.model.model_dump(),
        "hybrid": s.hybrid.model_dump(), "features": s.features.model_dump(),
        "embed": s.embed.model_dump()},
        default=list))


def train(ctx: RunContext) -> dict:
    """Fit the hybrid as of ``ds`` (fusion weights from the validation split before it) and
    register it as a model version."""
    from jobs.hybrid_inputs import as_of, open_trainer, validation
    from pipelines.core.engines import open_engine
    from pipelines.model.hybrid import fit_hybrid
    from pipelines.model.registry import model_version, save_hybrid

    started = time.perf_counter()
    require(ctx, ("features", ctx.part, "interactions.parquet"), "aggregate")
    require(ctx, ("embeddings", "interest", ctx.part, "part-0.parquet"), "embed")
    with open_engine(ctx.settings) as engine, open_trainer(ctx) as trainer:
        current = as_of(ctx, engine, ctx.ds)
        val = validation(ctx, engine, ctx.ds)
        hybrid = fit_hybrid(current, val, ctx.settings.hybrid, trainer)
    lineage, config = _lineage(ctx, current, val), _config(ctx)
    version = model_version(f"{ctx.ds:%Y%m%d}", lineage, config)
    save_hybrid(ctx.lake, version, hybrid, config, lineage)
    b = hybrid.base
    log.info("model %s: %d users x %d items (%d cold, map fitted on %d warm); fusion %s",
             version, b.user_ids.len(), b.item_ids.len(), int(b.cold.sum()), b.n_warm_fit,
             hybrid.fusion.note or hybrid.fusion.positives)
    return ctx.summary("train", model_version=version, trainer=ctx.settings.trainer,
                       users=b.user_ids.len(), items=b.item_ids.len(),
                       cold_items=int(b.cold.sum()), warm_items_mapped=b.n_warm_fit,
                       nnz=current.interactions.height,
                       validation_pairs=val[1].height if val else 0,
                       fusion=hybrid.fusion.to_dict(), seconds=time.perf_counter() - started)


def evaluate(ctx: RunContext) -> dict:
    """Fit every model on what was known at the end of ``ds - holdout_days`` and score it on
    the new interactions of the days after, up to ``ds``."""
    from jobs.hybrid_inputs import open_trainer, recommendable, split, validation
    from pipelines.core.contracts import METRIC_SCHEMA
    from pipelines.core.engines import open_engine
    from pipelines.evaluate.holdout import evaluation_lists, score_lists

    started = time.perf_counter()
    require(ctx, ("clean", "events", ctx.part, "part-0.parquet"), "validate")
    h = ctx.settings.eval.holdout_days
    cutoff = ctx.ds - timedelta(days=h)
    metrics = pl.DataFrame(schema=METRIC_SCHEMA)
    facts: dict = {"cutoff": cutoff.isoformat(), "train_pairs": 0, "test_users": 0,
                   "test_pairs": 0, "cold_test_pairs": 0}
    days = ctx.lake.partitions("clean", "events")
    if days and days[0] <= cutoff:
        with open_engine(ctx.settings) as engine, open_trainer(ctx) as trainer:
            train_in, truth = split(ctx, engine, ctx.ds, h)
            if truth.height:
                val = validation(ctx, engine, cutoff)
                lists, hybrid = evaluation_lists(train_in, val, truth, ctx.settings, trainer)
                cold = hybrid.base.item_ids.filter(hybrid.base.cold)
                metrics = score_lists(lists, truth, ctx.settings.eval.k, train_in, cold,
                                      recommendable(train_in).len())
                facts["cold_test_pairs"] = truth.filter(
                    pl.col("item_id").is_in(cold.implode())).height
        facts.update(train_pairs=train_in.interactions.height,
                     test_users=truth["user_id"].n_unique(), test_pairs=truth.height)
    if metrics.is_empty():
        log.warning("no held-out interactions of known users and items: nothing to evaluate")
    ctx.lake.write_parquet(metrics, "runs", ctx.part, "metrics.parquet")
    failpoint("evaluate:writing")
    ctx.lake.write_json(metrics.to_dicts(), "runs", ctx.part, "metrics.json")
    for row in metrics.filter(pl.col("metric").is_in(["recall", "ndcg"])
                              & (pl.col("k") == min(ctx.settings.eval.k))).iter_rows(named=True):
        log.info("%-12s %s@%d = %.4f", row["model"], row["metric"], row["k"], row["value"])
    return ctx.summary("evaluate", seconds=time.perf_counter() - started, **facts)
