"""publish: write the run report, then audit the staged lists of every shard and publish them
with metrics and the run record, atomically; the run record and every row name the model the
evaluation chose (``<version>:<model>``) and why.

Reads the day's decision, metrics and lifts, the staged shards and their summaries, the staged
similar items and the task summaries of the run; writes the warehouse,
``runs/ds=D/report.html`` and the published version's ``models/<version>/metrics.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from jobs.context import RunContext
from jobs.logs import get_logger
from pipelines.core import catalog as cat
from pipelines.core.errors import UpstreamMissing
from pipelines.model import registry
from pipelines.serve.shards import shard_totals

log = get_logger("tasks")

REPORTED_TASKS = ("validate", "aggregate", "finetune", "embed", "train", "evaluate",
                  "precompute")


def run(ctx: RunContext) -> dict:
    from jobs.tasks.train import day_model
    from pipelines.evaluate.gate import Decision
    from pipelines.serve.lists import seen_pairs
    from pipelines.warehouse import PublishRules, RunBatch

    started = time.perf_counter()
    ctx.lake.require(cat.DECISION, ds=ctx.ds)
    decision = ctx.lake.read_dict(cat.DECISION, ds=ctx.ds)
    staged = collect_staged(ctx, day_model(ctx), decision["published"])
    metrics = ctx.lake.read(cat.METRICS, ds=ctx.ds)
    serve = ctx.settings.serve
    version = f"{staged.model_version}:{decision['published']}"
    report = _write_report(ctx, version, metrics, decision)
    warehouse = ctx.warehouse()
    seen = seen_pairs(ctx.lake.read(cat.INTERACTIONS, ds=ctx.ds), serve)
    batch = RunBatch(
        ds=ctx.ds, run_id=ctx.run_id, model_version=version,
        recommendations=staged.recommendations, popular=staged.popular, metrics=metrics,
        catalog=ctx.catalog().select("item_id", "title", "category", "available"),
        seen=seen if seen is not None else pl.DataFrame(
            schema={"user_id": pl.String, "item_id": pl.String}),
        active_users=staged.active_users,
        started_at=_run_started(ctx),
        finished_at=datetime.now(UTC),
        message=f"published {decision['published']}; gate: {decision['reason']}",
        report=report,
        gate_verdict=Decision.from_dict(decision).verdict,
        gate_reason=decision["reason"],
        similar_items=staged.similar,
    )
    rules = PublishRules(top_n=serve.top_n, min_user_coverage=serve.min_user_coverage,
                         retention_days=serve.retention_days, similar_items=serve.similar_items)
    rows = warehouse.publish(batch, rules)
    ctx.lake.write(cat.MODEL_METRICS, registry.metrics_record(
        ctx.ds.isoformat(), ctx.run_id, metrics, decision), quiet=True,
        version=staged.model_version)
    log.info("published %d rows for %s (model %s, %s); gate: %s", rows, ctx.ds, version,
             warehouse.dialect, decision["reason"])
    log.info("run report: %s", report)
    return ctx.summary("publish", rows=rows, model_version=version, gate=decision,
                       warehouse=warehouse.dialect, report=report,
                       seconds=time.perf_counter() - started)


@dataclass(frozen=True)
class Staged:
    model_version: str
    recommendations: pl.DataFrame
    popular: pl.DataFrame
    similar: pl.DataFrame
    active_users: int


def collect_staged(ctx: RunContext, version: str, model: str) -> Staged:
    """Every shard's lists for ``ds``, checked to be complete and scored with ``version``'s
    ``model``."""
    n = ctx.settings.serve.shards
    missing, stale, frames, active = [], [], [], 0
    for i in range(n):
        keys = {"ds": ctx.ds, "shards": n, "shard": i}
        if not (ctx.lake.exists(cat.SHARD_SUMMARY, **keys)
                and ctx.lake.exists(cat.STAGED_LISTS, **keys)):
            missing.append(i)
            continue
        summary = ctx.lake.read(cat.SHARD_SUMMARY, **keys)
        scored = (summary.model_version, summary.model)
        if scored != (version, model):
            stale.append(f"{i} ({':'.join(scored)})")
            continue
        frames.append(ctx.lake.read(cat.STAGED_LISTS, **keys))
        active += summary.active_users
    if missing or stale:
        raise UpstreamMissing(
            f"precompute for {ctx.ds} is not complete for model {version}:{model} with {n} "
            "shard(s): "
            + "; ".join(filter(None, [
                missing and f"missing shard(s) {', '.join(map(str, missing))}",
                stale and f"shard(s) scored with another model: {', '.join(stale)}"]))
            + ": run the precompute task (or its missing shards) again")
    ctx.lake.require(cat.STAGED_POPULAR, ds=ctx.ds)
    ctx.lake.require(cat.STAGED_SIMILAR, ds=ctx.ds)
    similar = ctx.lake.read(cat.STAGED_SIMILAR, ds=ctx.ds)
    if similar.height and similar["model_version"][0] != version:
        raise UpstreamMissing(f"the similar items staged for {ctx.ds} are of model "
                              f"{similar['model_version'][0]}, not {version}: run the "
                              "precompute task (its shard 0) again")
    return Staged(version, pl.concat(frames), ctx.lake.read(cat.STAGED_POPULAR, ds=ctx.ds),
                  similar, active)


def _shard_summaries(ctx: RunContext) -> list[dict]:
    """The summaries of the configured shards that have one (mapped tasks write no
    ``precompute.json`` of the whole)."""
    n = ctx.settings.serve.shards
    keys = [{"ds": ctx.ds, "shards": n, "shard": i} for i in range(n)]
    return [ctx.lake.read_dict(cat.SHARD_SUMMARY, **k) for k in keys
            if ctx.lake.exists(cat.SHARD_SUMMARY, **k)]


def _write_report(ctx: RunContext, version: str, metrics: pl.DataFrame,
                  decision: dict) -> str:
    """The run's HTML report; returns its URL."""
    from pipelines.evaluate.report import cold_table, render_report

    summaries = {}
    for task in REPORTED_TASKS:
        if ctx.lake.exists(cat.SUMMARIES[task], ds=ctx.ds):
            summary = ctx.lake.read_dict(cat.SUMMARIES[task], ds=ctx.ds)
            summary.pop("ranker", None)  # what it was trained on is in the registry
            summaries[task] = summary
    if "precompute" not in summaries and (shards := _shard_summaries(ctx)):
        summaries["precompute"] = shard_totals(shards)
    evaluated = summaries.get("evaluate", {})
    cold = cold_table(metrics, int(evaluated.get("test_pairs", 0)),
                      int(evaluated.get("cold_test_pairs", 0)))
    lifts = ctx.lake.read(cat.LIFTS, ds=ctx.ds) if ctx.lake.exists(cat.LIFTS, ds=ctx.ds) \
        else None
    html = render_report(ctx.ds, ctx.run_id, version, metrics, summaries, cold, decision, lifts)
    ctx.lake.write(cat.REPORT, html.encode(), ds=ctx.ds)
    return ctx.lake.url(cat.REPORT, ds=ctx.ds)


def _run_started(ctx: RunContext) -> datetime:
    """When the run's validate task began (kept for the run record, never as a data cut-off)."""
    if not ctx.lake.exists(cat.VALIDATE_SUMMARY, ds=ctx.ds):
        return datetime.now(UTC)
    return datetime.fromisoformat(ctx.lake.read(cat.VALIDATE_SUMMARY, ds=ctx.ds).started_at)

