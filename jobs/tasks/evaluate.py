"""evaluate: the candidates (the ranker, with and without exploration slots) and every
baseline, fitted on what was known at a cut-off before ``ds`` and scored on the new
interactions of the days after it; then the decision of which model's lists the night
publishes.

Reads the features, embeddings and clean events of the holdout and of the ranker's training
days before its cut-off (merging features that were never aggregated), the generators train
kept for the cut-off when their inputs are the same (``jobs.cutoff``; the summary's
``cutoff_generators`` says whether they were), and the lift of the candidate the last run
published; writes ``runs/ds=D/metrics.{parquet,json}``,
``runs/ds=D/lifts.parquet`` and ``runs/ds=D/decision.json``. With a fine-tuned encoder
awaiting its evaluation, content similarity by it (``content_tuned``) is scored against the
encoder in use on the same holdout, and ``encoders/<version>/decision.json`` says whether it
is adopted (``pipelines.evaluate.encoders``).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from functools import partial
from typing import TYPE_CHECKING

import polars as pl
from threadpoolctl import threadpool_limits

from jobs.context import RunContext
from jobs.logs import get_logger
from pipelines.core import catalog as cat
from pipelines.core.contracts import METRIC_SCHEMA
from pipelines.core.failpoints import failpoint

if TYPE_CHECKING:
    from pipelines.model.recommender import Model

log = get_logger("tasks")


def run(ctx: RunContext) -> dict:
    from jobs.cutoff import CutoffGenerators
    from jobs.fits import KeptFits
    from jobs.inputs import holdout, ranker_splits, recommendable
    from pipelines.core.engines import open_engine, shard_map
    from pipelines.evaluate.gate import decide, popularity_lift
    from pipelines.evaluate.holdout import LIFT_SCHEMA, evaluation_lists, lifts, score_lists
    from pipelines.model.recommender import Model, fit_model
    from pipelines.model.registry import fit_config
    from pipelines.model.retrieval import BASELINES, Retrieval, fit_retrieval
    from pipelines.model.trainers import als_backend, open_trainer

    started = time.perf_counter()
    ctx.lake.require(cat.CLEAN_EVENTS, ds=ctx.ds)
    settings, gate = ctx.settings, ctx.settings.gate
    metrics = pl.DataFrame(schema=METRIC_SCHEMA)
    lift_table = pl.DataFrame(schema=LIFT_SCHEMA)
    facts: dict = {"cutoff": ctx.ds.isoformat(), "holdout_days": 0, "train_pairs": 0,
                   "test_users": 0, "test_pairs": 0, "cold_test_pairs": 0, "ranker": None,
                   "encoder": None, "cutoff_generators": None, "fits": {}}
    encoder = None
    with open_engine(settings) as engine, open_trainer(settings) as trainer:
        chosen = holdout(ctx, engine)
        if chosen is not None and chosen[2].height:
            h, train_in, truth = chosen
            cutoff = ctx.ds - timedelta(days=h)
            splits = ranker_splits(ctx, engine, cutoff, vectors_as_of=ctx.ds)
            config = fit_config(settings, als_backend(settings))
            # An earlier night's train fitted the same matrices (jobs.fits); only train keeps.
            fits = KeptFits(ctx, config, trainer, keep=False)
            generators = CutoffGenerators(ctx, train_in, config, partial(
                fit_retrieval, train_in, settings.retrieval, trainer, fits))

            def baselines() -> tuple[Retrieval, dict[str, pl.DataFrame]]:
                retrieval = generators()
                return retrieval, evaluation_lists(Model(retrieval, None), truth, settings,
                                                   names=BASELINES)

            # The baselines need only the cut-off's generators: they are listed beside the
            # ranker's training, whose one-core steps (co-occurrence, the last booster)
            # would leave a core idle. BLAS stays at one thread throughout (threadpoolctl's
            # limits are the process's: entered once here, none inside restores another).
            with threadpool_limits(limits=1, user_api="blas"), \
                    ThreadPoolExecutor(1) as side, shard_map(settings) as shards:
                cutoff_side = side.submit(baselines)
                model = fit_model(train_in, splits, settings, trainer, shards,
                                  current_fit=lambda: cutoff_side.result()[0], fitter=fits)
                ranked = model.candidates(settings.retrieval)
                lists = {**(evaluation_lists(model, truth, settings, names=ranked)
                            if ranked else {}), **cutoff_side.result()[1]}
            facts["cutoff_generators"] = generators.source
            facts["fits"] = fits.sources
            encoder = _compare_encoders(ctx, model, lists, truth, cutoff)
            cold = model.retrieval.item_ids.filter(model.retrieval.cold())
            item_users = train_in.items.select("item_id", pl.col("n_users").alias("users"))
            metrics = score_lists(lists, truth, settings.eval.k, item_users,
                                  train_in.interactions["user_id"].n_unique(), cold,
                                  recommendable(train_in).len())
            # Each candidate's lift over popularity: the regression rule of a later night.
            candidate_lifts = [{"model": c, "metric": f"lift_{gate.metric}", "k": gate.k,
                                "value": lift} for c in model.candidates(settings.retrieval)
                               if (lift := popularity_lift(metrics, gate, c)) is not None]
            metrics = pl.concat([metrics, pl.DataFrame(candidate_lifts, schema=METRIC_SCHEMA)])
            lift_table = lifts(lists, truth, gate.metric, gate.k, settings.eval.bootstrap,
                               seed=settings.model.seed)
            facts.update(cutoff=cutoff.isoformat(), holdout_days=h,
                         train_pairs=train_in.interactions.height,
                         test_users=truth["user_id"].n_unique(), test_pairs=truth.height,
                         cold_test_pairs=truth.filter(
                             pl.col("item_id").is_in(cold.implode())).height,
                         ranker=model.ranker.info if model.ranker is not None else None)
    if metrics.is_empty():
        log.warning("no held-out interactions of known users and items: nothing to evaluate")
    previous = ctx.warehouse().published_lift(ctx.ds, f"lift_{gate.metric}", gate.k)
    # The lists go out from the night's own model: its ranker, not the holdout's, must exist.
    decision = decide(metrics, previous, _day_has_ranker(ctx), gate, lift_table,
                      test_users=facts["test_users"])
    ctx.lake.write(cat.METRICS, metrics, ds=ctx.ds)
    ctx.lake.write(cat.LIFTS, lift_table, ds=ctx.ds)
    failpoint("evaluate:writing")
    ctx.lake.write(cat.METRICS_JSON, metrics.to_dicts(), ds=ctx.ds)
    ctx.lake.write(cat.DECISION, decision.to_dict(), ds=ctx.ds)
    if encoder is not None:
        version, record = encoder
        ctx.lake.write(cat.ENCODER_DECISION, record, version=version)
        log.info("encoder %s: %s", version, record["reason"])
        facts["encoder"] = {"version": version, "adopted": record["adopted"]}
    for row in metrics.filter(pl.col("metric").is_in(["recall", "ndcg"])
                              & (pl.col("k") == min(settings.eval.k))).iter_rows(named=True):
        log.info("%-12s %s@%d = %.4f", row["model"], row["metric"], row["k"], row["value"])
    log.info("decision: %s", decision.reason)
    return ctx.summary("evaluate", seconds=time.perf_counter() - started,
                       published=decision.published, **facts)


def _compare_encoders(ctx: RunContext, model: Model, lists: dict[str, pl.DataFrame],
                      truth: pl.DataFrame, cutoff: date) -> tuple[str, dict] | None:
    """With a fine-tuned encoder awaiting its evaluation (and tonight's catalog vectors by
    it), its content-similarity lists join ``lists`` and its decision record is made."""
    from jobs.tasks.finetune import registered
    from pipelines.embed.versions import awaiting
    from pipelines.evaluate.encoders import TUNED, decide_encoder, tuned_lists

    candidate = awaiting(registered(ctx.lake), ctx.ds)
    if candidate is None:
        return None
    if cutoff < candidate.learnt_until:
        log.warning("encoder %s learnt from days up to %s, inside tonight's holdout (from "
                    "%s): it is decided on a later night", candidate.version,
                    candidate.learnt_until, cutoff)
        return None
    if not ctx.lake.exists(cat.CANDIDATE_ITEM_VECTORS, ds=ctx.ds):
        log.warning("encoder %s awaits its evaluation but embed wrote no vectors by it for "
                    "%s: it is decided on a later night", candidate.version, ctx.ds)
        return None
    vectors = ctx.lake.read(cat.CANDIDATE_ITEM_VECTORS, ds=ctx.ds)
    lists[TUNED] = tuned_lists(model, vectors, truth, ctx.settings)
    return candidate.version, decide_encoder(lists, truth, ctx.settings, ctx.ds.isoformat())


def _day_has_ranker(ctx: RunContext) -> bool:
    from jobs.tasks.train import day_model

    if not ctx.lake.exists(cat.TRAIN_SUMMARY, ds=ctx.ds):
        return False
    return ctx.lake.exists(cat.MODEL_RANKER, version=day_model(ctx))
