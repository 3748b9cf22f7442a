"""train: the hybrid as of ``ds`` (fusion weights from the validation split before it),
registered as a new model version.

Reads the day's features, item vectors and interest memory (and those of the validation split's
start); writes ``models/<version>/`` and, in its summary, the version the day's lists use.
"""

from __future__ import annotations

import time

from jobs.context import RunContext
from jobs.logs import get_logger
from pipelines.core import catalog as cat
from pipelines.core.failpoints import failpoint
from pipelines.model import registry
from pipelines.model.hybrid import Hybrid

log = get_logger("tasks")


def run(ctx: RunContext) -> dict:
    from jobs.inputs import as_of, validation
    from pipelines.core.engines import open_engine
    from pipelines.model.hybrid import fit_hybrid
    from pipelines.model.trainers import als_backend, open_trainer

    started = time.perf_counter()
    ctx.lake.require(cat.INTERACTIONS, ds=ctx.ds)
    ctx.lake.require(cat.INTEREST, ds=ctx.ds)
    with open_engine(ctx.settings) as engine, open_trainer(ctx.settings) as trainer:
        current = as_of(ctx, engine, ctx.ds)
        val = validation(ctx, engine, ctx.ds)
        hybrid = fit_hybrid(current, val, ctx.settings.hybrid, trainer)
    days = ctx.window(cat.CLEAN_EVENTS, days=ctx.settings.features.history_days)
    partitions = {"/".join(cat.CLEAN_EVENTS.partition_folder(ds=d)):
                  ctx.lake.sha256(cat.CLEAN_EVENTS, ds=d) for d in days}
    lineage = registry.lineage(ctx.ds.isoformat(), partitions, current, val)
    config = registry.fit_config(ctx.settings, als_backend(ctx.settings))
    version = registry.model_version(f"{ctx.ds:%Y%m%d}", lineage, config)
    save(ctx, version, hybrid, config, lineage)
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


def save(ctx: RunContext, version: str, hybrid: Hybrid, config: dict, lineage: dict) -> None:
    """Every file of the version; the lineage last, so a complete version has one."""
    parts = registry.to_parts(hybrid)
    ctx.lake.write(cat.MODEL_USERS, parts.users, quiet=True, version=version)
    ctx.lake.write(cat.MODEL_ITEMS, parts.items, quiet=True, version=version)
    for name in registry.ARRAYS:
        ctx.lake.write(cat.MODEL_ARRAY, parts.arrays[name], quiet=True, version=version,
                       array=name)
    failpoint("train:saving")
    ctx.lake.write(cat.MODEL_FUSION, parts.fusion, quiet=True, version=version)
    ctx.lake.write(cat.MODEL_CONFIG, config, quiet=True, version=version)
    ctx.lake.write(cat.MODEL_LINEAGE, lineage, version=version)


def load(ctx: RunContext, version: str) -> Hybrid:
    """The fitted hybrid of a registered version."""
    return registry.from_parts(registry.Parts(
        users=ctx.lake.read(cat.MODEL_USERS, version=version),
        items=ctx.lake.read(cat.MODEL_ITEMS, version=version),
        arrays={name: ctx.lake.read(cat.MODEL_ARRAY, version=version, array=name)
                for name in registry.ARRAYS},
        fusion=ctx.lake.read(cat.MODEL_FUSION, version=version)))


def day_model(ctx: RunContext) -> str:
    """The model version the day's train task registered."""
    ctx.lake.require(cat.TRAIN_SUMMARY, ds=ctx.ds)
    return ctx.lake.read(cat.TRAIN_SUMMARY, ds=ctx.ds).model_version
