"""MovieLens 100K through the whole flow: import, validate every day, one nightly run."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from jobs.context import RunContext, default_run_id
from jobs.flow import run_flow
from jobs.rawdata import write_days
from jobs.tasks import run_task
from pipelines.movielens import load_movielens, to_raw_days
from tests.conftest import make_settings, shared_dataset

pytestmark = pytest.mark.slow

LAST_DAY = date(1998, 4, 22)


def test_ml100k_nightly_run_publishes(tmp_path: Path) -> None:
    folder = shared_dataset("ml-100k")
    settings = make_settings(tmp_path)
    write_days(settings.raw_root, to_raw_days(load_movielens(folder)), "parquet")
    raw_days = sorted(p.name[3:] for p in (tmp_path / "raw" / "events").iterdir())
    assert raw_days[-1] == LAST_DAY.isoformat()
    quarantined = 0
    for day in raw_days[:-1]:
        ds = date.fromisoformat(day)
        summary = run_task("validate", RunContext(settings, ds, default_run_id(ds)))
        quarantined += summary["events"]["quarantined"] + summary["events"]["duplicates"]
    assert quarantined == 0  # the real data is clean under the contract

    ctx = RunContext(settings, LAST_DAY, default_run_id(LAST_DAY))
    run_flow(ctx)
    wh = ctx.warehouse()
    current = wh.query("select * from recs.recommendations_current")
    assert current["ds"].unique().to_list() == [LAST_DAY]
    active = ctx.lake.read_parquet("features", ctx.part, "users.parquet").filter(
        pl.col("days_since_last") <= settings.features.active_days)
    assert current["user_id"].n_unique() == active.height
    metrics = wh.query("select model, metric, k, value from recs.model_metrics")
    assert set(metrics["model"]) == {"als", "popularity"}
    # Every model, metric and cut-off once.
    assert metrics.height == 2 * 4 * len(settings.eval.k)
    assert metrics.select("model", "metric", "k").n_unique() == metrics.height
    # The embeddings see the whole catalog as of the day.
    vectors = ctx.lake.read_parquet("embeddings", "items", ctx.part, "part-0.parquet")
    assert vectors.height == ctx.catalog().height
