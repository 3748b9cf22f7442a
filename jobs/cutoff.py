"""The generators as of evaluate's cut-off, kept from train.

Train fits the generators as of each of the ranker's training days, the first of them as of
``ds - ranker.label_days``; evaluate fits them as of its cut-off, ``ds - eval.holdout_days``
when the holdout is not widened. With both at 7 (the defaults) the two read the same inputs,
so train keeps what it fitted for that day under ``lake/generators/ds=D/``, with a key (the
digest of the inputs, of the fit's settings and of the code that fits them), and evaluate
takes them instead of fitting them again when its cut-off's key is the same and they can be
read. Only the latest night's are kept: train removes the others. A lake without them, or
with other inputs, is evaluated the same way, only slower.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

from jobs.context import RunContext
from jobs.logs import get_logger
from jobs.tasks.train import KEPT_FILES, read_parts, write_parts
from pipelines.core import catalog as cat
from pipelines.embed import encoder
from pipelines.model import als, registry, retrieval, spark_als, trainers
from pipelines.model.recommender import Model
from pipelines.model.retrieval import AsOf, Retrieval

log = get_logger("cutoff")


# The code that fits the generators: a release that changes it does not take another's.
_FITTING_CODE = (retrieval, als, spark_als, trainers, encoder)


def _code_digest() -> str:
    digest = hashlib.sha256()
    for module in _FITTING_CODE:
        digest.update(Path(str(module.__file__)).read_bytes())
    digest.update(json.dumps([registry.ARRAYS, registry.MATRICES]).encode())
    return digest.hexdigest()


def cutoff_key(day: date, digests: dict[str, str], config: dict) -> str:
    """The key of generators as of ``day`` fitted on inputs of ``registry.input_digests``
    ``digests`` with settings ``config`` (``registry.fit_config``) by this release's code."""
    return hashlib.sha256(json.dumps({"day": day.isoformat(), "inputs": digests,
                                      "config": config, "code": _code_digest()},
                                     sort_keys=True).encode()).hexdigest()


def _remove(ctx: RunContext, day: date) -> None:
    # The key first: a removal cut short leaves no key to files that are gone.
    ctx.lake.remove(cat.KEPT_KEY, ds=day)
    ctx.lake.remove_partition(cat.KEPT_KEY, ds=day)


def keeper(ctx: RunContext, config: dict,
           known: dict[date, dict[str, str]]) -> Callable[[AsOf, Retrieval], None]:
    """For train: removes every night's kept generators, and returns the ``fit_model`` hook
    that keeps those of evaluate's cut-off day; the input digests it computes go into
    ``known`` (the lineage reads them there)."""
    for day in ctx.lake.days(cat.KEPT_KEY):
        _remove(ctx, day)
    cutoff = ctx.ds - timedelta(days=ctx.settings.eval.holdout_days)

    def keep(asof: AsOf, ret: Retrieval) -> None:
        if asof.day != cutoff or asof.day in known:  # kept already (a regenerated day)
            return
        known[asof.day] = registry.input_digests(asof)
        write_parts(ctx, KEPT_FILES, registry.to_parts(Model(retrieval=ret, ranker=None)),
                    ds=ctx.ds)
        ctx.lake.write(cat.KEPT_KEY, {"day": asof.day.isoformat(), "fit_key": cutoff_key(
            asof.day, known[asof.day], config)}, ds=ctx.ds)
        log.info("kept the generators as of %s for evaluate's cut-off", asof.day)

    return keep


class CutoffGenerators:
    """For evaluate: the generators as of its cut-off ``asof.day``, kept by train when their
    key is this cut-off's, else ``fit()``; called by ``fit_model`` (``current_fit``), after
    which ``source`` says which it was."""

    def __init__(self, ctx: RunContext, asof: AsOf, config: dict,
                 fit: Callable[[], Retrieval]) -> None:
        self.ctx, self.asof, self.config, self.fit = ctx, asof, config, fit
        self.source = "not yet"

    def __call__(self) -> Retrieval:
        lake, ds, day = self.ctx.lake, self.ctx.ds, self.asof.day
        if lake.exists(cat.KEPT_KEY, ds=ds):
            kept = lake.read(cat.KEPT_KEY, ds=ds)
            if kept["day"] == day.isoformat() and kept["fit_key"] == cutoff_key(
                    day, registry.input_digests(self.asof), self.config):
                try:
                    ret = registry.from_parts(read_parts(self.ctx, KEPT_FILES, None,
                                                         ds=ds)).retrieval
                except (OSError, ValueError) as exc:
                    log.warning("the generators train kept for %s cannot be read (%s): "
                                "fitted again", day, exc)
                else:
                    log.info("the generators as of %s are the ones train kept", day)
                    self.source = "kept by train"
                    return ret
            else:
                log.info("the generators train kept for %s are not of these inputs, settings "
                         "and code: fitted again", kept["day"])
        self.source = "fitted"
        return self.fit()
