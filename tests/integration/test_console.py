"""The command line's console: one line per finished task, the detail in its log file, and all
of it on the console with ``--verbose``."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from jobs.console import task_line

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def test_a_task_line_says_what_went_in_and_out() -> None:
    summary = {"ds": "2026-10-03", "seconds": 0.71, "rejected": False,
               "events": {"raw": 1200, "clean": 1180, "quarantined": 15, "duplicates": 5}}
    assert task_line("validate", summary, "lake/runs/ds=2026-10-03/validate.json") == (
        "validate   2026-10-03  1,200 raw events -> 1,180 clean, 15 quarantined, "
        "5 duplicates; accepted  (0.7 s)  summary: lake/runs/ds=2026-10-03/validate.json")


def test_the_fine_tune_and_its_decision_get_their_lines() -> None:
    idle = {"ds": "2026-10-13", "seconds": 0.0, "due": False, "next_due": "2026-10-15"}
    assert "finetune   2026-10-13  not due; next on 2026-10-15  (0.0 s)" in task_line(
        "finetune", idle, "x")
    ran = {"ds": "2026-10-15", "seconds": 31.2, "due": True, "version": "20261015-ab",
           "pairs": 512, "steps": 8, "method": "lora", "device": "cpu"}
    assert ("encoder 20261015-ab: 512 pairs, 8 steps (lora, cpu), awaiting the evaluation"
            in task_line("finetune", ran, "x"))
    judged = {"ds": "2026-10-15", "seconds": 3.0, "test_users": 80, "holdout_days": 7,
              "published": "ranker", "encoder": {"version": "20261015-ab", "adopted": False}}
    assert ("2026-10-15  80 test users over 7 days: publishes ranker; encoder 20261015-ab "
            "refused  (3.0 s)") in task_line("evaluate", judged, "x")


def _recs(tmp: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jobs.cli", *args], cwd=tmp, capture_output=True, text=True,
        timeout=600, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO), "RECS_RAW_ROOT": str(tmp / "raw"),
             "RECS_LAKE_ROOT": str(tmp / "lake"),
             "RECS_WAREHOUSE": f"duckdb:///{tmp / 'warehouse.duckdb'}", **(env or {})})


def test_the_console_shows_a_line_per_task_and_the_log_file_the_rest(tmp_path: Path) -> None:
    start = date(2026, 10, 1)
    made = _recs(tmp_path, "generate", "--days", "3", "--users", "60", "--items", "40",
                 "--events-per-day", "200", "--start", start.isoformat())
    assert made.returncode == 0 and "wrote 3 days" in made.stderr
    quiet = _recs(tmp_path, "backfill", "--to", "2026-10-02", "--validate-only")
    assert quiet.returncode == 0, quiet.stderr
    lines = quiet.stderr.strip().splitlines()
    assert [ln.split()[:2] for ln in lines if ln.startswith("validate")] == [
        ["validate", "2026-10-01"], ["validate", "2026-10-02"]]
    assert lines[-2].startswith("backfill to 2026-10-02: 2 day(s) validated")
    assert lines[-1].startswith("data docs of those days: ")
    assert not any("recs.storage" in ln or "wrote " in ln for ln in lines)
    detail = (tmp_path / "recs.log").read_text()
    assert "recs.storage: wrote" in detail and "[task=validate ds=2026-10-02" in detail

    verbose = _recs(tmp_path, "--verbose", "backfill", "--from", "2026-10-03", "--to",
                    "2026-10-03", "--validate-only",
                    env={"RECS_LOG_FILE": str(tmp_path / "other.log")})
    assert verbose.returncode == 0, verbose.stderr
    assert "recs.storage: wrote" in verbose.stderr
    assert (tmp_path / "other.log").exists()

    failed = _recs(tmp_path, "backfill", "--to", "2026-10-03")
    assert failed.returncode == 1
    assert "ERROR: BackfillError: a backfill of the whole flow needs --from" in failed.stderr
