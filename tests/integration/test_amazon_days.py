"""Amazon days in the raw contract pass validation whole: the tiny fixture folder, and the
catalog day and the last two days of Industrial & Scientific."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.context import RunContext, default_run_id
from jobs.rawdata import write_days
from jobs.tasks import run_task
from pipelines.core.contracts import RawDay
from pipelines.datasets.amazon import to_raw_days
from tests.support.workspace import movielens_settings, shared_dataset
from tests.unit.datasets.test_amazon import END, tiny  # noqa: F401 - the tiny folder fixture

pytestmark = pytest.mark.slow


def _validate_all(settings_root: Path, days: list[RawDay]) -> list[dict]:
    settings = movielens_settings(settings_root)
    write_days(settings.raw_root, days, "parquet")
    return [run_task("validate", RunContext(settings, d.ds, default_run_id(d.ds))) for d in days]


def test_tiny_days_pass_validation(tiny: Path, tmp_path: Path) -> None:  # noqa: F811
    days = list(to_raw_days(tiny, END, cold={"a1"}, cold_from=END))
    summaries = _validate_all(tmp_path / "ws", days)
    assert summaries[0]["items"]["clean"] == 4
    assert [s["events"]["clean"] for s in summaries] == [d.events.height for d in days]
    assert sum(s["events"]["quarantined"] for s in summaries) == 0


@pytest.fixture(scope="module")
def scientific_days() -> list[RawDay]:
    return list(to_raw_days(shared_dataset("amazon-scientific"), END))


def test_scientific_first_and_last_days_pass_validation(
    scientific_days: list[RawDay], tmp_path: Path,
) -> None:
    # Validating all 78 days takes ~100 s; the catalog day and the last two show the contract.
    days = [scientific_days[0], *scientific_days[-2:]]
    summaries = _validate_all(tmp_path / "ws", days)
    assert summaries[0]["items"]["clean"] == 4_344
    assert [s["events"]["clean"] for s in summaries] == [1, 8_317, 8_317]
    assert sum(s["events"]["quarantined"] for s in summaries) == 0
