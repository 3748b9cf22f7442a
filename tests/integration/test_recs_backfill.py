"""`recs backfill` on generated raw logs: validation caught up from the first landed day, the
flow for a range after validating what comes before it, done days skipped, the first
failing day stopping the backfill with its message, and one Data Docs site at the end."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from jobs.backfill import backfill, plan
from jobs.context import RunContext
from jobs.rawdata import write_days
from pipelines.core import catalog as cat
from pipelines.core.errors import BackfillError, UpstreamMissing
from pipelines.core.settings import replace
from pipelines.datasets.generate import generate
from tests.support.workspace import (
    SMALL_LAST,
    SMALL_SPEC,
    make_settings,
    recs_cli,
    without_docs,
)

pytestmark = pytest.mark.slow

FIRST = SMALL_SPEC.start


@pytest.fixture
def landed(tmp_path: Path):
    """Raw logs of SMALL_SPEC, nothing validated."""
    settings = without_docs(make_settings(tmp_path / "ws"))
    write_days(settings.raw_root, generate(SMALL_SPEC), "parquet")
    return settings


def test_validate_only_catches_up_from_the_first_landed_day_and_resumes(landed) -> None:
    end = FIRST + timedelta(days=5)
    out = backfill(landed, None, end, validate_only=True)
    ctx = RunContext(landed, end, "t")
    assert out.validated == [FIRST + timedelta(days=d) for d in range(6)]
    assert ctx.lake.days(cat.CLEAN_EVENTS) == out.validated
    again = backfill(landed, None, end + timedelta(days=1), validate_only=True)
    assert again.skipped == out.validated and again.validated == [end + timedelta(days=1)]
    assert backfill(landed, FIRST, FIRST, validate_only=True, rerun=True).validated == [FIRST]


def test_a_backfill_renders_one_data_docs_site_of_its_days_at_the_end(landed,
                                                                      monkeypatch) -> None:
    settings = replace(landed, validate={"data_docs": True})
    end = FIRST + timedelta(days=2)
    out = backfill(settings, None, end, validate_only=True)
    ctx = RunContext(settings, end, "t")
    assert out.data_docs == ctx.lake.url(cat.DATA_DOCS_SITE) + "/index.html"
    assert not any(ctx.lake.exists(cat.DATA_DOCS, ds=d) for d in out.validated)
    site = Path(ctx.lake.url(cat.DATA_DOCS_SITE))
    pages = sorted(p.parent.parent.name for p in site.glob("validations/events/*/*/*.html"))
    assert pages == [f"ds={d}" for d in out.validated]
    # Each page shows its day's verdicts, the stored dq_results, as GX renders them.
    for day in out.validated:
        page = next(site.glob(f"validations/events/ds={day}/*/*.html")).read_text()
        dq = ctx.lake.read(cat.DQ_RESULTS, ds=day)
        failed = dq.filter(~pl.col("success") & (pl.col("dataset") == "events"))
        shown = re.findall(r"(\d+) unexpected values? found", page)
        assert sorted(map(int, shown)) == sorted(failed["unexpected_count"].to_list()), day
        assert "must never be null" in page
    # On demand: `recs docs` renders the days asked for; none validated is an error.
    assert recs_cli(settings, monkeypatch, "docs", "--from", str(end), "--to", str(end)) == 0
    assert [p.parent.parent.name for p in site.glob("validations/events/*/*/*.html")] == [
        f"ds={end}"]
    assert recs_cli(settings, monkeypatch, "docs", "--from", "2001-01-01", "--to",
                    "2001-01-31") == 1


def test_the_first_failing_day_stops_it_with_its_message(landed) -> None:
    bad = FIRST + timedelta(days=3)
    events = Path(landed.raw_root) / "events" / f"ds={bad.isoformat()}"
    for f in events.iterdir():
        f.write_bytes(b"not parquet")
    with pytest.raises(BackfillError, match=f"validation of {bad} failed: .*{bad}"):
        backfill(landed, None, SMALL_LAST, validate_only=True)
    ctx = RunContext(landed, SMALL_LAST, "t")
    assert ctx.lake.days(cat.CLEAN_EVENTS) == [FIRST + timedelta(days=d) for d in range(3)]


def test_recs_run_names_the_command_that_validates_the_history(landed, monkeypatch) -> None:
    from jobs.flow import run_flow

    with pytest.raises(UpstreamMissing, match=r"recs backfill --to \S+ --validate-only"):
        run_flow(RunContext(landed, SMALL_LAST, "t"))


def test_a_flow_backfill_validates_the_days_before_it_then_runs_each_night(
        landed, monkeypatch) -> None:
    start = SMALL_LAST - timedelta(days=1)
    with pytest.raises(BackfillError, match="needs --from"):
        plan(RunContext(landed, SMALL_LAST, "t"), None, SMALL_LAST, False, False)
    assert recs_cli(landed, monkeypatch, "backfill", "--from", start.isoformat(), "--to",
                    SMALL_LAST.isoformat()) == 0
    wh = RunContext(landed, SMALL_LAST, "t").warehouse()
    runs = wh.query("select ds, status from recs.pipeline_runs order by ds")
    assert runs["ds"].to_list() == [start, SMALL_LAST]
    assert set(runs["status"]) == {"success"}
    ctx = RunContext(landed, SMALL_LAST, "t")
    assert ctx.lake.days(cat.CLEAN_EVENTS)[0] == FIRST
    assert plan(ctx, start, SMALL_LAST, False, False).flow == []
