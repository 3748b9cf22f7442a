"""The nightly embed task across days: the interest memory follows its rule, only new or
changed texts are embedded, reruns and out-of-order backfills give the same state, and the
evaluation scores the embedding model from the state at its cut-off."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from jobs.context import RunContext, default_run_id
from jobs.tasks import run_task
from pipelines.core import catalog as cat
from pipelines.core.settings import replace
from tests.support.workspace import SMALL_SPEC, make_settings, prepare_history

pytestmark = pytest.mark.slow

LAST = SMALL_SPEC.start + timedelta(days=SMALL_SPEC.n_days - 1)
DAYS = [LAST - timedelta(days=2), LAST - timedelta(days=1), LAST]


def _night(settings, ds: date, tasks=("validate", "aggregate", "embed")) -> None:
    for task in tasks:
        run_task(task, RunContext(settings, ds, default_run_id(ds)))


def _read(settings, dataset: cat.Dataset, ds: date) -> pl.DataFrame:
    return RunContext(settings, DAYS[-1], "-").lake.read(dataset, ds=ds)


def _state(settings, ds: date) -> pl.DataFrame:
    return _read(settings, cat.INTEREST, ds)


def _summary(settings, ds: date) -> dict:
    return RunContext(settings, ds, "-").lake.read_dict(cat.EMBED_SUMMARY, ds=ds)


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("interest")
    settings = make_settings(root)
    prepare_history(settings, SMALL_SPEC, DAYS[0])
    for ds in DAYS:
        _night(settings, ds)
    return root


def test_state_follows_the_rule_from_day_to_day(nights: Path) -> None:
    settings = make_settings(nights)
    alpha = settings.embed.interest_alpha
    prev, state = _state(settings, DAYS[1]), _state(settings, DAYS[2])
    history = _read(settings, cat.USER_VECTORS, DAYS[2])
    active = set(_read(settings, cat.CLEAN_EVENTS, DAYS[2])["user_id"])
    assert 0 < len(active) < state.height
    for row in state.iter_rows(named=True):
        before = prev.filter(pl.col("user_id") == row["user_id"])
        if row["user_id"] not in active:
            assert row["updated"] < DAYS[2] and list(before["vector"][0]) == list(row["vector"])
            continue
        h = np.asarray(history.filter(pl.col("user_id") == row["user_id"])["vector"][0])
        u = h if before.is_empty() else (1 - alpha) * np.asarray(before["vector"][0]) + alpha * h
        np.testing.assert_allclose(row["vector"], u / np.linalg.norm(u), atol=1e-6)
        assert row["updated"] == DAYS[2]


def test_next_day_embeds_only_new_or_changed_texts(nights: Path) -> None:
    settings = make_settings(nights)
    cache = RunContext(settings, DAYS[-1], "-").read_days(
        cat.EMBED_CACHE, DAYS[:2], model=_summary(settings, DAYS[2])["model"])
    known = set(cache["text_hash"])
    summary = _summary(settings, DAYS[2])
    for kind in ("items", "users"):
        dataset = cat.ITEM_VECTORS if kind == "items" else cat.USER_VECTORS
        hashes = _read(settings, dataset, DAYS[2])["text_hash"]
        new = sum(h not in known for h in hashes)
        assert summary[kind]["embedded"] == new
        assert summary[kind]["reused"] == hashes.len() - new
    assert summary["users"]["reused"] > 0 and summary["users"]["embedded"] > 0


def test_rerun_and_out_of_order_backfill_give_the_same_state(
        nights: Path, tmp_path: Path) -> None:
    reference = {ds: _state(make_settings(nights), ds) for ds in DAYS}
    copy = tmp_path / "copy"
    shutil.copytree(nights, copy)
    settings = make_settings(copy)
    for ds in (DAYS[1], DAYS[0], DAYS[2]):  # a backfill of older days after the newest ran
        _night(settings, ds, tasks=("embed",))
        assert _summary(settings, ds)["items"]["embedded"] == 0
        assert _summary(settings, ds)["users"]["embedded"] == 0
    for ds in DAYS:
        assert _state(settings, ds).equals(reference[ds]), ds


def test_evaluate_scores_the_interest_memory_from_the_cutoff_state(nights: Path) -> None:
    settings = make_settings(nights)
    # Cut-off DAYS[0], the first day with an interest memory.
    settings = replace(settings, eval={"holdout_days": 2, "min_test_users": 1})
    summary = run_task("evaluate", RunContext(settings, DAYS[2], "eval"))
    assert summary["cutoff"] == DAYS[0].isoformat()
    metrics = _read(settings, cat.METRICS, DAYS[2])
    assert {"interest", "content", "als_plain"} <= set(metrics["model"])
    interest = metrics.filter(pl.col("model") == "interest",
                              pl.col("metric").is_in(["recall", "ndcg", "map", "hit_rate"]))
    assert interest["value"].is_between(0, 1).all() and interest["value"].max() > 0
