"""MovieLens 100K through the whole flow: import, validate every day, one nightly run."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from jobs.context import RunContext, default_run_id
from jobs.flow import run_flow
from pipelines.core import catalog as cat
from tests.support.workspace import ML100K_LAST_DAY, movielens_settings

pytestmark = pytest.mark.slow


def test_ml100k_nightly_run_publishes(ml100k_validated: Path, tmp_path: Path) -> None:
    root = tmp_path / "ml"
    shutil.copytree(ml100k_validated, root)
    settings = movielens_settings(root)
    lake = RunContext(settings, ML100K_LAST_DAY, "-").lake
    quarantined = sum(
        lake.read(cat.VALIDATE_SUMMARY, ds=d).events.quarantined
        for d in lake.days(cat.VALIDATE_SUMMARY)
    )
    assert quarantined == 0  # the real data is clean under the contract

    ctx = RunContext(settings, ML100K_LAST_DAY, default_run_id(ML100K_LAST_DAY))
    run_flow(ctx)
    wh = ctx.warehouse()
    current = wh.query("select * from recs.recommendations_current")
    assert current["ds"].unique().to_list() == [ML100K_LAST_DAY]
    active = ctx.lake.read(cat.USER_FEATURES, ds=ctx.ds).filter(
        pl.col("days_since_last") <= settings.features.active_days)
    assert current["user_id"].n_unique() == active.height
    metrics = wh.query("select model, metric, k, value from recs.model_metrics")
    # Every model, metric and cut-off once.
    assert set(metrics["model"]) == {"popularity", "als", "als_content", "hybrid"}
    assert set(metrics["k"]) == set(settings.eval.k)
    assert {"recall", "precision", "ndcg", "map", "hit_rate", "coverage", "novelty"} <= set(
        metrics["metric"])
    assert metrics.select("model", "metric", "k").n_unique() == metrics.height
    # Published through the gate: the hybrid beat popularity on the two held-out weeks.
    run = wh.query("select status, message, report from recs.pipeline_runs where ds = ?",
                   [ML100K_LAST_DAY])
    assert run["status"].to_list() == ["success"]
    assert run["message"][0].startswith("published; gate: hybrid ndcg@10")
    assert Path(run["report"][0]).is_file()
    # The embeddings see the whole catalog as of the day.
    vectors = ctx.lake.read(cat.ITEM_VECTORS, ds=ctx.ds)
    assert vectors.height == ctx.catalog().height
