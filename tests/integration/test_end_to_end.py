"""The whole flow on small synthetic data, against a real DuckDB file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from jobs.context import RunContext, default_run_id
from pipelines.core import catalog as cat
from pipelines.core.settings import Settings, replace
from pipelines.model.retrieval import BASELINES
from pipelines.warehouse import Warehouse
from tests.support.workspace import SMALL_SPEC, copy_workspace, recs_cli

pytestmark = pytest.mark.slow

LAST = SMALL_SPEC.start + timedelta(days=SMALL_SPEC.n_days - 1)
DAY1, DAY2 = LAST - timedelta(days=1), LAST


def warehouse(settings: Settings) -> Warehouse:
    return RunContext(settings, DAY2, "-").warehouse()


ALL_ROWS = "select * from recs.recommendations order by ds, user_id, rank"


@pytest.fixture(scope="module")
def two_days(two_nights: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return copy_workspace(two_nights, tmp_path_factory.mktemp("e2e") / "ws")


def test_two_days_fill_current_view(two_days: Settings) -> None:
    wh = warehouse(two_days)
    current = wh.query("select * from recs.recommendations_current")
    assert current.height > 0
    assert current["ds"].unique().to_list() == [DAY2]
    per_user = current.group_by("user_id").agg(pl.len().alias("n"), pl.col("rank").max())
    assert (per_user["n"] == per_user["rank"]).all()
    assert per_user["n"].max() <= two_days.serve.top_n
    runs = wh.query("select ds, status from recs.pipeline_runs order by ds")
    assert runs.rows() == [(DAY1, "success"), (DAY2, "success")]
    metrics = wh.query("select distinct model from recs.model_metrics order by model")
    # The generated catalog has descriptions: the explored candidate is measured too; the
    # first night also judged a fine-tuned encoder by its content similarity.
    assert set(metrics["model"]) == {"ranker", "ranker_explore", "content_tuned", *BASELINES}
    assert wh.query("select count(*) as n from recs.popular_current")["n"][0] > 0
    # Two weeks of generated history are enough to train and evaluate the ranker.
    published = wh.query("select distinct model_version from recs.recommendations_current")
    assert published["model_version"][0].split(":")[1] in ("ranker", "ranker_explore")


def test_every_user_with_history_gets_a_list(two_days: Settings) -> None:
    ctx = RunContext(two_days, DAY2, "-")
    users = ctx.lake.read(cat.USER_FEATURES, ds=DAY2)["user_id"]
    listed = warehouse(two_days).query(
        "select distinct user_id from recs.recommendations_current")["user_id"]
    assert set(listed) == set(users)


def test_no_seen_or_unavailable_items(two_days: Settings) -> None:
    ctx = RunContext(two_days, DAY2, default_run_id(DAY2))
    current = warehouse(two_days).query("select user_id, item_id from recs.recommendations_current")
    seen = ctx.clean_events(two_days.features.history_days).select("user_id", "item_id")
    assert current.join(seen, on=["user_id", "item_id"]).is_empty()
    unavailable = ctx.catalog().filter(~pl.col("available")).select("item_id")
    assert current.join(unavailable, on="item_id").is_empty()


def test_rerun_leaves_identical_rows(two_days: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    before = warehouse(two_days).query(ALL_ROWS)
    assert recs_cli(two_days, monkeypatch, "run", "--ds", DAY2.isoformat()) == 0
    assert warehouse(two_days).query(ALL_ROWS).equals(before)
    embed = RunContext(two_days, DAY2, "-").lake.read_dict(cat.EMBED_SUMMARY, ds=DAY2)
    assert embed["items"]["embedded"] == 0 and embed["users"]["embedded"] == 0


def test_backfill_keeps_current_on_newest_day(two_days: Settings,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    assert recs_cli(two_days, monkeypatch, "run", "--ds", DAY1.isoformat()) == 0
    current = warehouse(two_days).query("select distinct ds from recs.recommendations_current")
    assert current["ds"].to_list() == [DAY2]


def test_failed_run_is_recorded_and_current_untouched(two_days: Settings,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    missing = LAST + timedelta(days=1)  # no raw partition was landed for it
    before = warehouse(two_days).query("select * from recs.recommendations_current")
    assert recs_cli(two_days, monkeypatch, "run", "--ds", missing.isoformat()) == 1
    wh = warehouse(two_days)
    assert wh.query("select * from recs.recommendations_current").equals(before)
    failed = wh.query("select status, message from recs.pipeline_runs where ds = ?", [missing])
    assert failed["status"].to_list() == ["failed"]
    assert "has not landed" in failed["message"][0]


def test_task_summaries_account_for_every_row(two_days: Settings) -> None:
    lake = RunContext(two_days, DAY2, "-").lake
    v = lake.read_dict(cat.VALIDATE_SUMMARY, ds=DAY2)["events"]
    assert v["raw"] == v["clean"] + v["quarantined"] + v["duplicates"]
    assert v["quarantined"] > 0  # the generator injects malformed rows
    for task in ("aggregate", "finetune", "embed", "train", "evaluate", "precompute",
                 "publish"):
        assert lake.exists(cat.SUMMARIES[task], ds=DAY2)


def test_a_refused_ranker_leaves_the_best_baseline_and_force_publish_overrides(
        two_days: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    before = warehouse(two_days).query(ALL_ROWS)
    strict = replace(two_days, gate={"min_lift": 100.0})
    assert recs_cli(strict, monkeypatch, "run", "--ds", DAY2.isoformat()) == 0
    wh = warehouse(two_days)
    run = wh.query("select status, model_version, message, report from recs.pipeline_runs "
                   "where ds = ?", [DAY2]).row(0, named=True)
    best = run["model_version"].split(":")[1]
    assert run["status"] == "success" and best in BASELINES
    assert run["message"].startswith(f"published {best}; gate: published the best baseline "
                                     f"{best}: the best baseline {best}")
    assert Path(run["report"]).is_file()  # the report says why
    current = wh.query("select distinct model_version from recs.recommendations where ds = ?",
                       [DAY2])
    assert current["model_version"].to_list() == [run["model_version"]]
    freshness = "select ds, model, gate_verdict, gate_reason from recs.publication_current"
    assert wh.query(freshness).row(0) == (DAY2, best, "refused",
                                          run["message"].split("; gate: ", 1)[1])
    assert recs_cli(strict, monkeypatch, "run", "--ds", DAY2.isoformat(),
                    "--force-publish") == 0
    run = warehouse(two_days).query("select status, model_version, message from "
                                    "recs.pipeline_runs where ds = ?", [DAY2]).row(0, named=True)
    assert run["status"] == "success" and run["model_version"].endswith(":ranker")
    assert run["message"].startswith("published ranker; gate: force_publish despite")
    assert warehouse(two_days).query(freshness).row(0)[:3] == (DAY2, "ranker", "forced")
    assert warehouse(two_days).query(ALL_ROWS).equals(before)


def test_evaluate_takes_the_generators_train_kept_for_its_cut_off(
        two_nights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Train keeps the generators of its first training day, which are evaluate's cut-off's;
    evaluate takes them, and the metrics are those of generators it fits itself."""
    settings = copy_workspace(two_nights, tmp_path / "ws")
    lake = RunContext(settings, DAY2, "-").lake
    assert lake.days(cat.KEPT_KEY) == [DAY2]  # the first night's were removed
    kept = lake.read(cat.KEPT_KEY, ds=DAY2)
    assert kept["day"] == (DAY2 - timedelta(days=settings.eval.holdout_days)).isoformat()
    summary = lake.read_dict(cat.EVALUATE_SUMMARY, ds=DAY2)
    assert summary["cutoff_generators"] == "kept by train"
    night = lake.read(cat.METRICS, ds=DAY2)

    def evaluate() -> str:
        assert recs_cli(settings, monkeypatch, "task", "evaluate", "--ds", DAY2.isoformat()) == 0
        return lake.read_dict(cat.EVALUATE_SUMMARY, ds=DAY2)["cutoff_generators"]

    def same_metrics() -> None:
        # Up to the order a mean over users adds them in.
        assert_frame_equal(lake.read(cat.METRICS, ds=DAY2), night, check_exact=False,
                           rel_tol=1e-12, abs_tol=1e-15)

    lake.write(cat.KEPT_KEY, {**kept, "fit_key": "0" * 64}, ds=DAY2)  # as if of other inputs
    assert evaluate() == "fitted"
    same_metrics()
    lake.write(cat.KEPT_KEY, kept, ds=DAY2)
    lake.remove(cat.KEPT_ARRAY, ds=DAY2, array="item_factors")  # the key, but not the files
    assert evaluate() == "fitted"
    same_metrics()
    lake.remove_partition(cat.KEPT_KEY, ds=DAY2)
    assert evaluate() == "fitted"
    same_metrics()
