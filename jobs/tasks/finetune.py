"""finetune: on its cadence, the encoder learns from the logs and is registered as a new
version for the evaluation to adopt or refuse.

It runs every ``[finetune] every_days`` days (weekly by default), or on any day with
``[finetune] force`` (the DAG's ``finetune`` param); on other days it only says when it runs
next. It reads the clean events and the catalog up to ``ds - eval.holdout_days`` (the
evaluation decides the version on a holdout after them); fine-tunes the configured base
encoder on pairs mined from them (``pipelines.embed.pairs``), with the CPU caps on pairs and
steps when there is no GPU; and writes
``encoders/<version>/model/`` and ``encoders/<version>/lineage.json``. The version is
``<ds>-<hash of the lineage>``: a rerun on the same inputs gives the same version.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from jobs.context import RunContext
from jobs.logs import get_logger
from pipelines.core import catalog as cat
from pipelines.core.catalog import Lake
from pipelines.core.failpoints import failpoint
from pipelines.embed.finetune import Tuned
from pipelines.embed.versions import EncoderVersion, due

log = get_logger("tasks")


def run(ctx: RunContext) -> dict:
    started = time.perf_counter()
    cfg = ctx.settings.finetune
    if not due(ctx.ds, cfg.every_days, cfg.force):
        next_due = _next_due(ctx.ds, cfg.every_days)
        log.info("not due: every %d day(s), next on %s", cfg.every_days,
                 next_due or "no day ([finetune] every_days = 0)")
        return ctx.summary("finetune", seconds=time.perf_counter() - started, due=False,
                           version=None, next_due=next_due)
    with tempfile.TemporaryDirectory() as tmp:
        trained = train_encoder(ctx, ctx.ds - timedelta(days=ctx.settings.eval.holdout_days),
                                Path(tmp) / "model")
        if trained is None:
            return ctx.summary("finetune", seconds=time.perf_counter() - started, due=True,
                               version=None, pairs=0)
        tuned, lineage = trained
        digest = hashlib.sha256(json.dumps(lineage, sort_keys=True).encode()).hexdigest()
        version = f"{ctx.ds:%Y%m%d}-{digest[:10]}"
        ctx.lake.write_folder(cat.ENCODER_MODEL, tuned.folder, version=version)
        failpoint("finetune:registering")
        # The lineage last: a version is registered only once its weights are all there.
        ctx.lake.write(cat.ENCODER_LINEAGE, lineage, version=version)
    log.info("encoder %s: loss %.3f -> %.3f over %d steps, %.0f pairs/s", version,
             tuned.loss_first, tuned.loss_last, tuned.steps, tuned.pairs_per_s)
    return ctx.summary("finetune", seconds=time.perf_counter() - started, due=True,
                       version=version, pairs=tuned.pairs, steps=tuned.steps,
                       pairs_per_s=round(tuned.pairs_per_s, 1), device=tuned.device,
                       method=tuned.method)


def train_encoder(ctx: RunContext, last: date, out: Path) -> tuple[Tuned, dict] | None:
    """The configured base encoder fine-tuned on pairs mined from the clean events of the
    history window ending ``last`` (with the CPU caps without a GPU), saved in ``out``, with
    its lineage; None when the window holds fewer than two pairs."""
    from pipelines.core.devices import pick_device
    from pipelines.embed.encoder import model_identity, resolve_model_path
    from pipelines.embed.finetune import finetune
    from pipelines.embed.pairs import mine_pairs
    from pipelines.model.registry import frame_digest

    cfg, embed = ctx.settings.finetune, ctx.settings.embed
    device = pick_device(ctx.settings.device)
    if device == "cpu":
        cfg = cfg.model_copy(update={"max_pairs": min(cfg.max_pairs, cfg.cpu_max_pairs),
                                     "max_steps": min(cfg.max_steps, cfg.cpu_max_steps)})
    days = ctx.lake.window(cat.CLEAN_EVENTS, last, ctx.settings.features.history_days)
    events = ctx.read_days(cat.CLEAN_EVENTS, days)
    pairs = (mine_pairs(events, ctx.at(last).catalog(), embed.item_template, embed.history_k,
                        cfg.window_days, cfg.max_pairs, cfg.seed) if events is not None
             else None)
    if pairs is None or pairs.height < 2:
        log.warning("too few pairs to fine-tune on in the clean days up to %s", last)
        return None
    base = resolve_model_path(embed.model)
    counts = dict(sorted(pairs.group_by("kind").len().iter_rows()))
    log.info("fine-tuning %s (%s) on %d pairs %s from %s..%s on %s", embed.model, cfg.method,
             pairs.height, counts, days[0], days[-1], device)
    tuned = finetune(base, pairs, cfg, device, out)
    lineage = {
        "ds": ctx.ds.isoformat(), "base": model_identity(embed.model, base),
        "days": {"first": days[0].isoformat(), "last": days[-1].isoformat(),
                 "count": len(days)},
        "pairs": counts, "pairs_sha256": frame_digest(pairs), "device": device,
        "steps": tuned.steps, "batch": tuned.batch, "weights_sha256": tuned.weights_sha256,
        "loss": {"first": round(tuned.loss_first, 6), "last": round(tuned.loss_last, 6)},
        "config": cfg.model_dump(mode="json", exclude={"force", "min_lift"}),
    }
    return tuned, lineage


def _next_due(ds: date, every_days: int) -> str | None:
    if not every_days:
        return None
    nxt = ds + timedelta(days=1)
    while not due(nxt, every_days):
        nxt += timedelta(days=1)
    return nxt.isoformat()


def registered(lake: Lake) -> list[EncoderVersion]:
    """Every registered encoder version with its decision, if it has one."""
    out = []
    for version in lake.versions(cat.ENCODER_LINEAGE):
        if not lake.exists(cat.ENCODER_LINEAGE, version=version):
            continue  # a fine-tune killed before its lineage: not a version
        lineage = lake.read(cat.ENCODER_LINEAGE, version=version)
        trained = date.fromisoformat(lineage["ds"])
        decision = (lake.read(cat.ENCODER_DECISION, version=version)
                    if lake.exists(cat.ENCODER_DECISION, version=version) else None)
        out.append(EncoderVersion(
            version, trained, date.fromisoformat(lineage["days"]["last"]),
            date.fromisoformat(decision["ds"]) if decision else None,
            decision["adopted"] if decision else None))
    return out
