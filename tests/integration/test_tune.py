"""``recs tune`` on the small synthetic lake after two nightly runs."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from jobs.context import RunContext
from jobs.tools.tune import current_params, tune
from pipelines.core import catalog as cat
from pipelines.core.settings import Settings, apply_overrides, load_settings
from tests.support.workspace import SMALL_SPEC, copy_workspace, recs_cli

pytestmark = pytest.mark.slow

LAST = SMALL_SPEC.start + timedelta(days=SMALL_SPEC.n_days - 1)
DAY1, DAY2 = LAST - timedelta(days=1), LAST


def snapshot(root: str) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in Path(root).rglob("*") if p.is_file()}


def tuned_sections(settings: Settings) -> tuple:
    return settings.model, settings.ranker


@pytest.fixture(scope="module")
def two_days(two_nights: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return copy_workspace(two_nights, tmp_path_factory.mktemp("tune") / "ws")


def test_tune_writes_a_loadable_best_config(two_days: Settings, tmp_path: Path) -> None:
    before = snapshot(two_days.lake_root)
    out = tmp_path / "tuned.toml"
    study = tune(RunContext(two_days, DAY2, "-"), n_trials=3, out=out)
    assert len(study.trials) == 3
    first = study.trials[0]
    assert first.params == current_params(two_days)
    # The evaluation held out eval.holdout_days (it did not need to widen), so the objective
    # is exactly the evaluate task's ranker metric of ds under the current config.
    lake = RunContext(two_days, DAY2, "-").lake
    assert lake.read(cat.EVALUATE_SUMMARY, ds=DAY2).holdout_days == two_days.eval.holdout_days
    metrics = lake.read(cat.METRICS, ds=DAY2)
    evaluated = metrics.filter((pl.col("model") == "ranker") & (pl.col("metric") == "ndcg")
                               & (pl.col("k") == two_days.gate.k))["value"].item()
    assert first.value == pytest.approx(evaluated)
    assert study.best_value >= first.value
    assert first.user_attrs["popularity"] > 0
    loaded = load_settings(out, env={})
    assert tuned_sections(loaded) == tuned_sections(apply_overrides(two_days,
                                                                    study.best_params))
    assert snapshot(two_days.lake_root) == before  # the lake is only read


def test_same_command_gives_same_best(two_days: Settings, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    outs = [tmp_path / "a.toml", tmp_path / "b.toml"]
    for out in outs:
        assert recs_cli(two_days, monkeypatch, "tune", "--ds", DAY2.isoformat(),
                        "--trials", "3", "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert printed.count("current config (trial 0)") == 2
    a, b = (load_settings(out, env={}) for out in outs)
    assert tuned_sections(a) == tuned_sections(b)
    assert outs[0].read_text() == outs[1].read_text()


def test_too_little_history_is_a_named_error(two_days: Settings, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "long.toml"
    days = SMALL_SPEC.n_days
    config.write_text(f"[eval]\nholdout_days = {days}\nmax_holdout_days = {days}\n")
    out = tmp_path / "never.toml"
    assert recs_cli(two_days, monkeypatch, "--config", str(config), "tune",
                    "--ds", DAY2.isoformat(), "--out", str(out)) == 1
    assert "no clean events on or before" in capsys.readouterr().err
    assert not out.exists()
