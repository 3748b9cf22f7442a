"""MovieLens 100K through the whole flow: import, validate every day, one nightly run; and
``recs experiment`` scoring the published lists and every baseline on the month after a
cut-off."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from jobs.context import RunContext, default_run_id
from jobs.flow import run_flow
from pipelines.core import catalog as cat
from pipelines.core.settings import Settings, replace
from pipelines.model.retrieval import BASELINES
from tests.support.workspace import (
    ML100K_LAST_DAY,
    SHORT_TEXTS,
    movielens_settings,
    shared_dataset,
)

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
    # Every user with history in the window has a list of their own.
    users = ctx.lake.read(cat.USER_FEATURES, ds=ctx.ds)
    assert current["user_id"].n_unique() == users.height
    metrics = wh.query("select model, metric, k, value from recs.model_metrics "
                       "where metric not like 'lift_%'")
    # Every model, metric and cut-off once.
    assert set(metrics["model"]) == {"ranker", "ranker_explore", *BASELINES}
    assert set(metrics["k"]) == set(settings.eval.k)
    assert {"recall", "precision", "ndcg", "map", "hit_rate", "coverage", "novelty"} <= set(
        metrics["metric"])
    assert metrics.select("model", "metric", "k").n_unique() == metrics.height
    # Published through the gate, which says which model and why.
    run = wh.query("select status, model_version, message, report from recs.pipeline_runs "
                   "where ds = ?", [ML100K_LAST_DAY])
    assert run["status"].to_list() == ["success"]
    published = run["model_version"][0].split(":")[1]
    assert run["message"][0].startswith(f"published {published}; gate: ")
    assert Path(run["report"][0]).is_file()
    # The embeddings see the whole catalog as of the day.
    vectors = ctx.lake.read(cat.ITEM_VECTORS, ds=ctx.ds)
    assert vectors.height == ctx.catalog().height


def test_experiment_scores_published_lists_against_every_baseline(ml100k_validated: Path,
                                                                  tmp_path: Path) -> None:
    from jobs.tools.experiment import PUBLISHED, run_experiment

    # The validated history is the experiment's workspace: only the last day is validated.
    shutil.copytree(ml100k_validated, tmp_path / "validated")
    cutoff = date(1998, 3, 22)
    table = run_experiment("movielens", tmp_path, replace(Settings(), embed=SHORT_TEXTS),
                           shared_dataset("ml-100k"), [cutoff])
    assert table["cutoff"].to_list() == [cutoff.isoformat(), "mean"]
    row = table.row(0, named=True)
    assert row["test_users"] > 50
    assert {PUBLISHED, *BASELINES} <= set(table.columns)
    assert row["published_model"] in {"ranker", "ranker_explore", *BASELINES}
    # The lift is over the cut-off's best baseline, with a paired interval around it.
    best = max(BASELINES, key=row.__getitem__)
    assert row["baseline"] == best
    assert row["lift"] == pytest.approx(row[PUBLISHED] / row[best])
    assert row["lift_lo"] <= row["lift"] <= row["lift_hi"]
    # Every user known at the cut-off has a list (their own or the popular one).
    assert 0 < row[PUBLISHED] <= 1
