"""The days the DAG runs for: RECS_START_DATE and RECS_END_DATE, checked by wait_for_raw."""

from __future__ import annotations

from datetime import date

import pytest

from jobs.airflow_tasks import outside_run_dates


def test_days_inside_the_range_may_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECS_START_DATE", "1997-09-20")
    monkeypatch.setenv("RECS_END_DATE", "1998-04-22")
    assert outside_run_dates(date(1997, 9, 20)) is None
    assert outside_run_dates(date(1998, 4, 22)) is None


def test_days_outside_it_name_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECS_START_DATE", "1997-09-20")
    monkeypatch.setenv("RECS_END_DATE", "1998-04-22")
    assert "before RECS_START_DATE (1997-09-20)" in outside_run_dates(date(1997, 9, 19))
    assert "after RECS_END_DATE (1998-04-22)" in outside_run_dates(date(1998, 4, 23))


def test_defaults_start_in_1995_and_never_end(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECS_START_DATE", raising=False)
    monkeypatch.delenv("RECS_END_DATE", raising=False)
    assert outside_run_dates(date(1995, 1, 1)) is None
    assert outside_run_dates(date(2100, 1, 1)) is None
    assert "RECS_START_DATE" in outside_run_dates(date(1994, 12, 31))


def test_a_bad_date_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECS_END_DATE", "yesterday")
    with pytest.raises(ValueError, match="RECS_END_DATE='yesterday'"):
        outside_run_dates(date(2000, 1, 1))
