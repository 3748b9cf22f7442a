"""train: the candidate generators as of ``ds`` and the ranker over their candidates, trained
on the days before it, registered as a new model version.

Reads the features, item vectors and interest memory of ``ds`` and of the ranker's training
days (merging features that were never aggregated); writes ``models/<version>/`` and, in its
summary, the version the day's lists use, and keeps the generators of the training day that is
evaluate's cut-off in ``generators/ds=D/`` (``jobs.cutoff``), and the ALS and co-occurrence
fits of each day it fits in ``fits/ds=D/``, for later nights (``jobs.fits``). With
``serve.shards`` above 1 the ranker's training candidates are generated in those user shards
on Dask workers, as precompute's lists are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from jobs.context import RunContext
from jobs.logs import get_logger
from pipelines.core import catalog as cat
from pipelines.core.failpoints import failpoint
from pipelines.model import registry
from pipelines.model.recommender import Model

log = get_logger("tasks")


def run(ctx: RunContext) -> dict:
    from jobs.cutoff import keeper
    from jobs.fits import KeptFits, prune
    from jobs.inputs import as_of, ranker_splits
    from pipelines.core.engines import open_engine, shard_map
    from pipelines.model.recommender import fit_model
    from pipelines.model.trainers import als_backend, open_trainer

    started = time.perf_counter()
    ctx.lake.require(cat.INTERACTIONS, ds=ctx.ds)
    ctx.lake.require(cat.INTEREST, ds=ctx.ds)
    config = registry.fit_config(ctx.settings, als_backend(ctx.settings))
    known: dict = {}  # input digests by day, computed once for the kept generators and lineage
    with open_engine(ctx.settings) as engine, open_trainer(ctx.settings) as trainer:
        current = as_of(ctx, engine, ctx.ds)
        splits = ranker_splits(ctx, engine, ctx.ds)
        prune(ctx)
        fits = KeptFits(ctx, config, trainer, keep=True)
        with shard_map(ctx.settings) as shards:
            model = fit_model(current, splits, ctx.settings, trainer, shards,
                              fitted=keeper(ctx, config, known), fitter=fits)
    days = ctx.window(cat.CLEAN_EVENTS, days=ctx.settings.features.history_days)
    partitions = {"/".join(cat.CLEAN_EVENTS.partition_folder(ds=d)):
                  ctx.lake.sha256(cat.CLEAN_EVENTS, ds=d) for d in days}
    lineage = registry.lineage(ctx.ds.isoformat(), partitions, current,
                               splits[:model.training_days], known)
    version = registry.model_version(f"{ctx.ds:%Y%m%d}", lineage, config)
    save(ctx, version, model, config, lineage)
    r = model.retrieval
    ranker = model.ranker.info if model.ranker is not None else None
    log.info("model %s: %d users x %d items (%d cold); ranker %s", version, r.user_ids.len(),
             r.n_items, int(r.cold().sum()), ranker or "not trained (too little history)")
    return ctx.summary("train", model_version=version, trainer=ctx.settings.trainer,
                       users=r.user_ids.len(), items=r.n_items, cold_items=int(r.cold().sum()),
                       nnz=current.interactions.height, ranker=ranker, fits=fits.sources,
                       seconds=time.perf_counter() - started)


@dataclass(frozen=True)
class PartFiles:
    """The datasets a fitted retrieval's parts are stored in (``registry.Parts``, its ranker
    aside): a model version's, or the generators kept for evaluate (``jobs.cutoff``)."""

    users: cat.Dataset
    items: cat.Dataset
    array: cat.Dataset
    matrix: cat.Dataset


MODEL_FILES = PartFiles(cat.MODEL_USERS, cat.MODEL_ITEMS, cat.MODEL_ARRAY, cat.MODEL_MATRIX)
KEPT_FILES = PartFiles(cat.KEPT_USERS, cat.KEPT_ITEMS, cat.KEPT_ARRAY, cat.KEPT_MATRIX)


def write_parts(ctx: RunContext, files: PartFiles, parts: registry.Parts, **keys: object,
                ) -> None:
    ctx.lake.write(files.users, parts.users, quiet=True, **keys)
    ctx.lake.write(files.items, parts.items, quiet=True, **keys)
    for name, array in parts.arrays.items():
        ctx.lake.write(files.array, array, quiet=True, array=name, **keys)
    for name, matrix in parts.matrices.items():
        ctx.lake.write(files.matrix, matrix, quiet=True, matrix=name, **keys)


def read_parts(ctx: RunContext, files: PartFiles, ranker: str | None, **keys: object,
               ) -> registry.Parts:
    return registry.Parts(
        users=ctx.lake.read(files.users, **keys), items=ctx.lake.read(files.items, **keys),
        arrays={name: ctx.lake.read(files.array, array=name, **keys)
                for name in registry.ARRAYS},
        matrices={name: ctx.lake.read(files.matrix, matrix=name, **keys)
                  for name in registry.MATRICES},
        ranker=ranker)


def save(ctx: RunContext, version: str, model: Model, config: dict, lineage: dict) -> None:
    """Every file of the version; the lineage last, so a complete version has one."""
    parts = registry.to_parts(model)
    write_parts(ctx, MODEL_FILES, parts, version=version)
    failpoint("train:saving")
    if parts.ranker is not None:
        ctx.lake.write(cat.MODEL_RANKER, parts.ranker.encode(), quiet=True, version=version)
    else:
        ctx.lake.remove(cat.MODEL_RANKER, version=version)
    ctx.lake.write(cat.MODEL_CONFIG, config, quiet=True, version=version)
    ctx.lake.write(cat.MODEL_LINEAGE, lineage, version=version)


def load(ctx: RunContext, version: str) -> Model:
    """The fitted model of a registered version."""
    ctx.lake.require(cat.MODEL_LINEAGE, version=version)
    ranker = (ctx.lake.read(cat.MODEL_RANKER, version=version).decode()
              if ctx.lake.exists(cat.MODEL_RANKER, version=version) else None)
    return registry.from_parts(read_parts(ctx, MODEL_FILES, ranker, version=version))


def day_model(ctx: RunContext) -> str:
    """The model version the day's train task registered."""
    ctx.lake.require(cat.TRAIN_SUMMARY, ds=ctx.ds)
    return ctx.lake.read(cat.TRAIN_SUMMARY, ds=ctx.ds).model_version
