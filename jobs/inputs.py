"""The models' inputs as of any day, read from the lake (train, evaluate and tune share them).

Whatever is read for day ``X`` was knowable at the end of ``X``: features merged from the daily
summaries up to ``X``, the catalog as of ``X``, and the interest memory of the latest partition
``<= X``. So the evaluation's cut-off and the ranker's training days see the users' past exactly
as a nightly run on that day would have. Item embeddings are the exception: an item's text is
not what its users did, so the days a model for ``D`` is trained or judged on read the vectors
of the latest partition ``<= D`` for the items of their own catalog, and a lake whose first
embeddings are from ``D`` judges the same content-aware model that ``D`` publishes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import date, timedelta

import polars as pl

from jobs.context import RunContext
from jobs.logs import get_logger
from jobs.tasks.aggregate import features_for
from pipelines.core import catalog as cat
from pipelines.core.engines import Engine
from pipelines.evaluate.holdout import holdout_truth, sample_test_users
from pipelines.model.retrieval import AsOf

log = get_logger("inputs")


def _latest(ctx: RunContext, day: date, dataset: cat.Dataset) -> date | None:
    days = [d for d in ctx.lake.days(dataset) if d <= day]
    return days[-1] if days else None


def as_of(ctx: RunContext, engine: Engine, day: date, vectors_as_of: date | None = None,
          ) -> AsOf:
    """The models' inputs at the end of ``day``; item embeddings from the latest partition
    on or before ``vectors_as_of`` (default ``day``): an item's text is not what its users
    did, so a training day may use the embeddings of the day the model is trained for."""
    feats = features_for(ctx, engine, day)
    catalog = ctx.at(day).catalog()
    item_day = _latest(ctx, vectors_as_of or day, cat.ITEM_VECTORS)
    vectors = pl.DataFrame(schema={"item_id": pl.String, "vector": pl.Array(pl.Float32, 0)})
    model = None
    if item_day is not None:
        stored = ctx.lake.read(cat.ITEM_VECTORS, ds=item_day)
        model = stored["model"][0] if stored.height else None
        vectors = (stored.select("item_id", "vector")
                   .filter(pl.col("item_id").is_in(catalog["item_id"].implode())))
    interest_day = _latest(ctx, day, cat.INTEREST)
    interest = None
    if interest_day is not None:
        stored = ctx.lake.read(cat.INTEREST, ds=interest_day)
        # Cosines only mean something between vectors of one model at one precision.
        if stored.height and stored["model"][0] == model:
            interest = stored.select("user_id", "vector")
        elif stored.height:
            log.warning("interest memory of %s is from another embedding model than the item "
                        "vectors of %s: not used", interest_day, item_day)
    log.info("inputs as of %s: %d interactions, item vectors of %s, interest memory of %s",
             day, feats["interactions"].height, item_day, interest_day)
    return AsOf(day=day, interactions=feats["interactions"], items=feats["items"],
                users=feats["users"], item_vectors=vectors, interest=interest,
                categories=catalog.select("item_id", "category"))


def recommendable(asof: AsOf) -> pl.Series:
    """Items a model fitted on ``asof`` could list: interacted ones and embedded catalog ones."""
    return pl.concat([asof.interactions["item_id"], asof.item_vectors["item_id"]]).unique()


def split(ctx: RunContext, engine: Engine, day: date, days_after: int,
          vectors_as_of: date | None = None) -> tuple[AsOf, pl.DataFrame]:
    """The inputs as of ``day - days_after`` and the new positive pairs of the days after it,
    up to ``day``."""
    start = day - timedelta(days=days_after)
    train = as_of(ctx, engine, start, vectors_as_of)
    test_days = [d for d in ctx.lake.days(cat.CLEAN_EVENTS) if start < d <= day]
    events = ctx.read_days(cat.CLEAN_EVENTS, test_days)
    if events is None:
        return train, pl.DataFrame(schema={"user_id": pl.String, "item_id": pl.String})
    return train, holdout_truth(events, train.interactions, recommendable(train), ctx.settings)


class Splits:
    """The ranker's training days, latest first, each read when an iteration first reaches it
    and kept: a fit that stops at ``ranker.max_train_rows`` never reads the others."""

    def __init__(self, days: Iterator[tuple[AsOf, pl.DataFrame]]) -> None:
        self._days = days
        self._read: list[tuple[AsOf, pl.DataFrame]] = []

    def __iter__(self) -> Iterator[tuple[AsOf, pl.DataFrame]]:
        for i in itertools.count():
            if i == len(self._read):
                day = next(self._days, None)
                if day is None:
                    return
                self._read.append(day)
            yield self._read[i]

    def __bool__(self) -> bool:
        return next(iter(self), None) is not None

    def __getitem__(self, at: slice) -> list[tuple[AsOf, pl.DataFrame]]:
        """The days of ``at`` (a slice from the start), read if need be."""
        return list(itertools.islice(self, at.start, at.stop, at.step))


def ranker_splits(ctx: RunContext, engine: Engine, day: date, vectors_as_of: date | None = None,
                  ) -> Splits:
    """The ranker's training days for a model as of ``day``: ``day - label_days``, then
    ``split_step_days`` apart, each with the new positive pairs of the ``label_days`` after it
    (days before the first clean partition, or without any pair, are skipped); item vectors as
    of ``vectors_as_of`` (default ``day``). Read lazily (``Splits``)."""
    cfg = ctx.settings.ranker
    days = ctx.lake.days(cat.CLEAN_EVENTS)

    def read() -> Iterator[tuple[AsOf, pl.DataFrame]]:
        found = False
        for j in range(cfg.splits):
            start = day - timedelta(days=cfg.label_days + j * cfg.split_step_days)
            if not days or start < days[0]:
                break
            train, truth = split(ctx, engine, start + timedelta(days=cfg.label_days),
                                 cfg.label_days, vectors_as_of=vectors_as_of or day)
            if truth.height:
                found = True
                yield train, truth
        if not found:
            log.warning("no training day for the ranker before %s: it is not trained", day)

    return Splits(read())


def holdout(ctx: RunContext, engine: Engine) -> tuple[int, AsOf, pl.DataFrame] | None:
    """The evaluation's holdout: its length in days, the inputs at its cut-off and its new
    positive pairs. It starts at ``eval.holdout_days`` and widens by as much again until it
    holds ``min_test_users`` test users or reaches ``max_holdout_days`` (or the first clean
    day), then keeps at most ``max_test_users`` of them (a fixed hash sample); None when no
    cut-off has clean days before it."""
    cfg = ctx.settings.eval
    days = ctx.lake.days(cat.CLEAN_EVENTS)
    chosen = None
    h = cfg.holdout_days
    while h <= cfg.max_holdout_days:
        cutoff = ctx.ds - timedelta(days=h)
        if not days or cutoff < days[0]:
            break
        train, truth = split(ctx, engine, ctx.ds, h, vectors_as_of=ctx.ds)
        chosen = (h, train, truth)
        if truth["user_id"].n_unique() >= cfg.min_test_users:
            break
        h += cfg.holdout_days
    if chosen is not None and chosen[2]["user_id"].n_unique() > cfg.max_test_users:
        h, train, truth = chosen
        log.info("holdout of %d days: %d of its %d test users (eval.max_test_users)", h,
                 cfg.max_test_users, truth["user_id"].n_unique())
        chosen = h, train, sample_test_users(truth, cfg.max_test_users)
    return chosen
