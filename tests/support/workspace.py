"""Workspaces for the tests: generated raw logs, settings pointing at a folder, validated
history, the CLI with those settings, and the shared public datasets."""

from __future__ import annotations

import os
import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest

from jobs.backfill import backfill
from jobs.rawdata import write_days
from pipelines.core.settings import Settings, replace
from pipelines.datasets.generate import GenerateSpec, generate

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"

SMALL_SPEC = GenerateSpec(n_users=150, n_items=120, n_days=14, start=date(2026, 10, 1),
                          events_per_day=400, seed=11)
SMALL_LAST = SMALL_SPEC.start + timedelta(days=SMALL_SPEC.n_days - 1)
ML100K_LAST_DAY = date(1998, 4, 22)


def shared_dataset(name: str) -> Path:
    """A dataset under ../shared/data; where it is absent, a skip saying why, or a failure
    where it must be there (CI sets RECS_REQUIRE_SHARED_DATA)."""
    folder = SHARED_DATA / name
    if not folder.is_dir():
        reason = f"{folder} not found: the shared datasets are not beside this clone"
        if os.environ.get("RECS_REQUIRE_SHARED_DATA"):
            pytest.fail(reason + " (RECS_REQUIRE_SHARED_DATA is set)")
        pytest.skip(reason)
    return folder


# A fine-tune of a few seconds on the CPU, where a test runs one.
TINY_FINETUNE = {"cpu_max_pairs": 64, "cpu_max_steps": 2, "batch_size": 16, "max_length": 32}
# The first of the two nights fine-tunes, and its evaluation refuses the encoder.
REFUSED_FINETUNE = {"force": True, "min_lift": 10.0}


def make_settings(root: Path) -> Settings:
    """Settings for a workspace; the holdout and the ranker's training days are short enough
    for two weeks of generated history to train and evaluate a ranker."""
    return replace(
        Settings(),
        raw_root=str(root / "raw"),
        lake_root=str(root / "lake"),
        warehouse=f"duckdb:///{root / 'warehouse.duckdb'}",
        device="cpu",
        eval={"holdout_days": 3, "min_test_users": 50},
        ranker={"label_days": 3, "split_step_days": 2, "splits": 3},
        finetune=TINY_FINETUNE,
    )


def without_docs(settings: Settings) -> Settings:
    return replace(settings, validate={"data_docs": False})


def prepare_history(settings: Settings, spec: GenerateSpec, first_nightly: date) -> None:
    """Write the raw logs and validate every day before the first nightly run, as ``recs
    backfill --validate-only`` does (one Data Docs site of those days at the end)."""
    write_days(settings.raw_root, generate(spec), "parquet")
    backfill(settings, None, first_nightly - timedelta(days=1), validate_only=True)


def write_config(settings: Settings, path: Path) -> Path:
    """``settings`` as a TOML file ``load_settings`` reads back equal."""
    import tomli_w

    path.write_text(tomli_w.dumps(settings.model_dump(mode="json")))
    return path


def recs_cli(settings: Settings, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """``recs ARGS`` with ``settings`` as its config file (beside the lake) and its stores in
    its environment."""
    from jobs.cli import main

    config = write_config(settings, Path(settings.lake_root).parent / "recs.toml")
    monkeypatch.setenv("RECS_CONFIG", str(config))
    monkeypatch.setenv("RECS_RAW_ROOT", settings.raw_root)
    monkeypatch.setenv("RECS_LAKE_ROOT", settings.lake_root)
    monkeypatch.setenv("RECS_WAREHOUSE", settings.warehouse)
    monkeypatch.setenv("RECS_DEVICE", "cpu")
    return main(list(args))


def copy_workspace(src: Path, dst: Path) -> Settings:
    shutil.copytree(src, dst)
    return make_settings(dst)


# User texts cut at 64 tokens where a test embeds a real catalog and its users: a user's
# 20-title history runs to the default 256, where the CPU embeds ~20 texts a second.
SHORT_TEXTS = {"max_length": 64}


def movielens_settings(root: Path) -> Settings:
    # MovieLens days swing far more than a production stream: take every day as it is. Its
    # last days are thin (849 ratings in the last 3), so hold out two weeks, as
    # `recs experiment movielens` does.
    return replace(make_settings(root), validate={"accept_anomalies": True}, embed=SHORT_TEXTS,
                   eval={"holdout_days": 14, "min_test_users": 200},
                   ranker={"label_days": 7, "split_step_days": 4, "splits": 8})
