"""The interaction fits kept across nights (``jobs.fits``): a fit taken from the lake gives the
generators a fit on the spot gives, array for array; another matrix, a lost file or other
settings fit again; train's pruning keeps the days later nights read."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from jobs.context import RunContext
from jobs.fits import KeptFits, prune
from pipelines.core import catalog as cat
from pipelines.core.settings import ModelSettings, RetrievalSettings, Settings, replace
from pipelines.model.als import build_matrix, fit_als
from pipelines.model.registry import fit_config
from pipelines.model.retrieval import Retrieval, cooccurrence_neighbors, fit_retrieval
from tests.support.worlds import as_of

DAY = date(2026, 3, 12)
ALS = ModelSettings(factors=4, iterations=3, seed=1)
CFG = RetrievalSettings(cold_min_users=2, neighbors=6, recent_items=3)
CATALOG = [f"i{i:02d}" for i in range(40)]


def trainer(data):
    return fit_als(data, ALS)


def _events(seed: int) -> list:
    """Every third catalog item untouched (between touched ones: the kept neighbours are
    indexed over the touched items and must land on the right rows of all of them)."""
    rng = np.random.default_rng(seed)
    touched = [i for n, i in enumerate(CATALOG) if n % 3]
    return [(f"u{u:02d}", touched[int(rng.integers(len(touched)))],
             DAY - timedelta(days=int(rng.integers(0, 10))))
            for u in range(30) for _ in range(int(rng.integers(2, 9)))]


def _asof(seed: int = 0):
    vectors = {i: np.random.default_rng(n).normal(size=4).tolist() for n, i in enumerate(CATALOG)}
    return as_of(_events(seed), DAY, vectors, catalog=CATALOG)


@pytest.fixture
def ctx(tmp_path) -> RunContext:
    settings = replace(Settings(), lake_root=str(tmp_path / "lake"), model=ALS.model_dump(),
                       retrieval=CFG.model_dump())
    return RunContext(settings, DAY, "t")


def _config(ctx: RunContext) -> dict:
    return fit_config(ctx.settings, "implicit-cpu")


def _same(a: Retrieval, b: Retrieval) -> None:
    for field in dataclasses.fields(Retrieval):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if sp.issparse(x):
            assert (x != y).nnz == 0 and x.dtype == y.dtype, field.name
        elif isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=field.name)
        else:
            assert x.equals(y), field.name


def test_a_kept_fit_gives_the_generators_a_fresh_fit_gives(ctx) -> None:
    asof = _asof()
    plain = fit_retrieval(asof, CFG, trainer)
    # The neighbours as defined over every item's column (the untouched ones' empty).
    whole = build_matrix(asof.interactions, item_ids=plain.item_ids).matrix
    whole.data[:] = 1.0  # who took an item, not how much
    assert (plain.neighbors != cooccurrence_neighbors(whole, CFG.neighbors)).nnz == 0
    assert plain.neighbors[0::3].nnz == 0 < plain.neighbors.nnz
    first = KeptFits(ctx, _config(ctx), trainer, keep=True)
    _same(fit_retrieval(asof, CFG, trainer, first), plain)
    assert first.sources == {DAY.isoformat(): "fitted"}
    assert ctx.lake.days(cat.FIT_KEY) == [DAY]

    def refuse(data):
        raise AssertionError("fitted although the fits were kept")

    later = KeptFits(ctx, _config(ctx), refuse, keep=False)
    _same(fit_retrieval(asof, CFG, refuse, later), plain)
    assert later.sources == {DAY.isoformat(): "kept"}


def test_another_matrix_settings_or_a_lost_file_fit_again(ctx) -> None:
    asof, config = _asof(), _config(ctx)
    fit_retrieval(asof, CFG, trainer, KeptFits(ctx, config, trainer, keep=True))
    other = _asof(seed=1)  # features aggregated again: another matrix for the same day
    fits = KeptFits(ctx, config, trainer, keep=False)
    _same(fit_retrieval(other, CFG, trainer, fits), fit_retrieval(other, CFG, trainer))
    assert fits.sources == {DAY.isoformat(): "fitted"}

    more = ALS.model_copy(update={"iterations": 4})
    changed = fit_config(replace(ctx.settings, model=more.model_dump()), "implicit-cpu")
    fits = KeptFits(ctx, changed, trainer, keep=False)
    fit_retrieval(asof, CFG, trainer, fits)
    assert fits.sources == {DAY.isoformat(): "fitted"}

    ctx.lake.remove(cat.FIT_NEIGHBORS, ds=DAY)
    fits = KeptFits(ctx, config, trainer, keep=False)
    _same(fit_retrieval(asof, CFG, trainer, fits), fit_retrieval(asof, CFG, trainer))
    assert fits.sources == {DAY.isoformat(): "fitted"}

    # A key cut short (a disk filled mid-write) is a refit, not a failed night.
    fit_retrieval(asof, CFG, trainer, KeptFits(ctx, config, trainer, keep=True))
    Path(ctx.lake.url(cat.FIT_KEY, ds=DAY)).write_text('{"day": ')
    fits = KeptFits(ctx, config, trainer, keep=False)
    fit_retrieval(asof, CFG, trainer, fits)
    assert fits.sources == {DAY.isoformat(): "fitted"}


def test_train_keeps_the_days_later_nights_read(ctx) -> None:
    fits = KeptFits(ctx, _config(ctx), trainer, keep=True)
    asof = _asof()  # one matrix for every day: each day's fits are its own
    days = [DAY - timedelta(days=d) for d in (0, 7, 14, 15, 21)]
    for day in days:
        fit_retrieval(dataclasses.replace(asof, day=day), CFG, trainer, fits)
    prune(ctx)  # at DAY: the earliest day a night reads is DAY - 7 - 7
    assert ctx.lake.days(cat.FIT_KEY) == sorted(days[:3])
