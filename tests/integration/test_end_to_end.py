"""The whole flow on small synthetic data, against a real DuckDB file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from jobs.context import RunContext, default_run_id
from pipelines.core import catalog as cat
from pipelines.core.settings import Settings
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
    assert metrics["model"].to_list() == ["als", "als_content", "hybrid", "popularity"]
    assert wh.query("select count(*) as n from recs.popular_current")["n"][0] > 0


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
    for task in ("aggregate", "embed", "train", "evaluate", "precompute", "publish"):
        assert lake.exists(cat.SUMMARIES[task], ds=DAY2)


def test_quality_gate_refuses_a_model_and_force_publish_overrides(
        two_days: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    strict = tmp_path / "strict.toml"
    strict.write_text("[gate]\nmin_lift_over_popularity = 100.0\n")
    monkeypatch.setenv("RECS_CONFIG", str(strict))
    before = warehouse(two_days).query(ALL_ROWS)
    assert recs_cli(two_days, monkeypatch, "run", "--ds", DAY2.isoformat()) == 1
    wh = warehouse(two_days)
    assert wh.query(ALL_ROWS).equals(before)
    run = wh.query("select status, message, report from recs.pipeline_runs where ds = ?", [DAY2])
    assert run["status"].to_list() == ["failed"]
    assert "does not beat popularity" in run["message"][0]
    assert Path(run["report"][0]).is_file()  # the report says why
    assert recs_cli(two_days, monkeypatch, "run", "--ds", DAY2.isoformat(),
                    "--force-publish") == 0
    run = warehouse(two_days).query("select status, message from recs.pipeline_runs "
                                    "where ds = ?", [DAY2])
    assert run["status"].to_list() == ["success"]
    assert run["message"][0].startswith("published; gate: force_publish despite")
    assert warehouse(two_days).query(ALL_ROWS).equals(before)
