"""The nightly flow publishing into PostgreSQL, and precompute in user shards."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from jobs.context import RunContext, default_run_id
from jobs.tasks import run_task
from pipelines.core import catalog as cat
from pipelines.core.errors import UpstreamMissing
from pipelines.core.settings import Settings, replace
from pipelines.warehouse import open_warehouse
from tests.support.workspace import SMALL_SPEC, copy_workspace, recs_cli

pytestmark = pytest.mark.slow

DAY2 = SMALL_SPEC.start + timedelta(days=SMALL_SPEC.n_days - 1)
CURRENT = "select * from recs.recommendations_current order by user_id, rank"


def _current(settings: Settings):
    return open_warehouse(settings.warehouse).query(CURRENT)


def test_recs_run_publishes_the_same_rows_into_postgresql(
        two_nights: Path, tmp_path: Path, postgres_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    duck = copy_workspace(two_nights, tmp_path / "ws")
    pg = replace(duck, warehouse=postgres_url)
    assert recs_cli(pg, monkeypatch, "run", "--ds", DAY2.isoformat()) == 0
    got, want = _current(pg), _current(duck)
    assert got.height == want.height > 0
    assert got.drop("score").equals(want.drop("score").cast(got.drop("score").schema))
    assert (got["score"] - want["score"]).abs().max() < 1e-9
    runs = open_warehouse(postgres_url).query("select ds, status from recs.pipeline_runs")
    assert runs.rows() == [(DAY2, "success")]


def _with_shards(settings: Settings, shards: int) -> Settings:
    return replace(settings, serve={"shards": shards}, dask={"workers": 2})


def test_shards_on_dask_workers_publish_the_same_lists(
        two_nights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = copy_workspace(two_nights, tmp_path / "ws")
    before = _current(settings)
    sharded = _with_shards(settings, 3)
    for task in ("precompute", "publish"):
        assert recs_cli(sharded, monkeypatch, "task", task, "--ds", DAY2.isoformat()) == 0
    for i in range(3):
        assert Path(sharded.lake_root, "staging", f"ds={DAY2}", "shards=3",
                    f"part-{i}.parquet").is_file()
    assert _current(settings).equals(before)


def test_publish_refuses_until_every_shard_is_scored(two_nights: Path, tmp_path: Path) -> None:
    settings = copy_workspace(two_nights, tmp_path / "ws")
    before = _current(settings)
    sharded = _with_shards(settings, 3)
    ctx = RunContext(sharded, DAY2, default_run_id(DAY2))
    run_task("precompute", ctx, shard=1)
    with pytest.raises(UpstreamMissing, match=r"missing shard\(s\) 0, 2"):
        run_task("publish", ctx)
    assert _current(settings).equals(before)
    for shard in (0, 2):
        run_task("precompute", ctx, shard=shard)
    # mapped tasks leave no summary of the whole task: the report adds up the shards'
    ctx.lake.remove(cat.PRECOMPUTE_SUMMARY, ds=ctx.ds)
    run_task("publish", ctx)
    assert _current(settings).equals(before)
    report = Path(sharded.lake_root, "runs", f"ds={DAY2}", "report.html").read_text()
    assert re.search(r">precompute<.*?>shards<.*?>3<", report, re.S)


CATEGORIES_PER_LIST = """
    select avg(n) as n from (
        select r.user_id, count(distinct i.category) as n
        from recs.recommendations_current as r
        join recs.items_current as i using (item_id)
        where r.rank <= 10 group by r.user_id)
"""


def test_diversity_reranking_publishes_capped_lists_through_the_audit(
        two_nights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = copy_workspace(two_nights, tmp_path / "ws")
    wh = open_warehouse(settings.warehouse)
    relevance_only = wh.query(CATEGORIES_PER_LIST)["n"][0]
    diverse = replace(settings, serve={"mmr_lambda": 0.5, "max_per_category": 2, "top_n": 10})
    for task in ("precompute", "publish"):
        assert recs_cli(diverse, monkeypatch, "task", task, "--ds", DAY2.isoformat()) == 0
    per_category = wh.query(
        "select r.user_id, i.category, count(*) as n from recs.recommendations_current as r "
        "join recs.items_current as i using (item_id) where i.category is not null "
        "group by r.user_id, i.category")
    assert per_category["n"].max() <= 2
    after = wh.query("select user_id, count(*) as n from recs.recommendations_current "
                     "group by user_id")
    assert after["n"].max() == 10
    assert wh.query(CATEGORIES_PER_LIST)["n"][0] > relevance_only
