"""The interaction matrix's fits (ALS factors and co-occurrence neighbours) kept across nights.

A night fits the generators as of three days: ``ds`` (train), ``ds - ranker.label_days`` (the
ranker's first training day, in train; evaluate's cut-off, ``jobs.cutoff``) and
``ds - eval.holdout_days - ranker.label_days`` (the first training day of evaluate's ranker).
With the defaults, the last two are days an earlier night's train fitted as its ``ds`` and its
training day. Their costly part reads the interaction matrix alone, so train keeps it under
``lake/fits/ds=D/``, with a key (the digest of the matrix, of the settings it is fitted with
and of the fitting code), and a fit as of a day with that key takes it instead of fitting it.
A lake without them, or with another matrix for the day (features aggregated again), fits
as before: the result is the same either way, only slower.

Train removes the days before ``ds - holdout_days - label_days``: no later night's evaluation
reads them for its first training day. A deeper split (when the first has too few rows) or a
widened holdout reads an earlier day, and fits it again.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from pathlib import Path

from jobs.context import RunContext
from jobs.logs import get_logger
from pipelines.core import catalog as cat
from pipelines.model import als, retrieval, spark_als, trainers
from pipelines.model.als import Factors, InteractionMatrix
from pipelines.model.retrieval import InteractionFit, Trainer, fit_interactions

log = get_logger("fits")

# The code that fits them: a release that changes it does not take another's.
_FITTING_CODE = (retrieval, als, spark_als, trainers)


def fit_key(data: InteractionMatrix, config: dict) -> str:
    """The key of ``data``'s fits with settings ``config`` (``registry.fit_config``)."""
    digest = hashlib.sha256()
    for module in _FITTING_CODE:
        digest.update(Path(str(module.__file__)).read_bytes())
    # Only the settings these fits read: another ranker or encoder fits the same matrix alike.
    digest.update(json.dumps({k: config[k] for k in ("trainer", "backend", "model")}
                             | {"neighbors": config["retrieval"]["neighbors"]},
                             sort_keys=True).encode())
    m = data.matrix
    for array in (m.indptr.astype("int64"), m.indices.astype("int64"), m.data):
        digest.update(array.tobytes())
    for ids in (data.user_ids, data.item_ids):
        digest.update("\n".join(ids.to_list()).encode())
        digest.update(b"\0")
    return digest.hexdigest()


class KeptFits:
    """A ``retrieval.Fitter``: the kept fits of a day when their key is the matrix's, else
    fitted by ``trainer`` (and kept, with ``keep``)."""

    def __init__(self, ctx: RunContext, config: dict, trainer: Trainer, keep: bool) -> None:
        self.ctx, self.config, self.trainer, self.keep = ctx, config, trainer, keep
        self.neighbors = int(config["retrieval"]["neighbors"])
        self.sources: dict[str, str] = {}  # day -> "kept" or "fitted", for the summaries

    def __call__(self, data: InteractionMatrix, day: date) -> InteractionFit:
        lake, key = self.ctx.lake, fit_key(data, self.config)
        if lake.exists(cat.FIT_KEY, ds=day):
            try:
                same = lake.read(cat.FIT_KEY, ds=day)["key"] == key
                kept = InteractionFit(
                    Factors(user=lake.read(cat.FIT_ARRAY, ds=day, array="user_factors"),
                            item=lake.read(cat.FIT_ARRAY, ds=day, array="item_factors")),
                    lake.read(cat.FIT_NEIGHBORS, ds=day)) if same else None
            except (OSError, ValueError, KeyError) as exc:
                log.warning("the fits kept for %s cannot be read (%s): fitted again", day, exc)
                kept = None
            if kept is not None:
                log.info("ALS and co-occurrence as of %s: kept by an earlier night", day)
                self.sources[day.isoformat()] = "kept"
                return kept
        fit = fit_interactions(data, self.trainer, self.neighbors)
        self.sources[day.isoformat()] = "fitted"
        if self.keep:
            # The key first out and last in: a write cut short leaves no key to its files.
            lake.remove(cat.FIT_KEY, ds=day)
            lake.write(cat.FIT_ARRAY, fit.factors.user, quiet=True, ds=day, array="user_factors")
            lake.write(cat.FIT_ARRAY, fit.factors.item, quiet=True, ds=day, array="item_factors")
            lake.write(cat.FIT_NEIGHBORS, fit.neighbors, quiet=True, ds=day)
            lake.write(cat.FIT_KEY, {"day": day.isoformat(), "key": key}, quiet=True, ds=day)
        return fit


def prune(ctx: RunContext) -> None:
    """Remove the kept fits of days before the earliest one a night from ``ds`` on reads."""
    s = ctx.settings
    first = ctx.ds - timedelta(days=s.eval.holdout_days + s.ranker.label_days)
    for day in ctx.lake.days(cat.FIT_KEY):
        if day < first:
            ctx.lake.remove(cat.FIT_KEY, ds=day)  # first: a removal cut short leaves no key
            ctx.lake.remove_partition(cat.FIT_KEY, ds=day)
