"""The encoder's life across nights, without a person: a forced fine-tune registers a version
with its lineage, the same night's evaluation adopts or refuses it, and the next night embeds
with the adopted one (the catalog from the cache its evaluation filled) or keeps the frozen
one."""

from __future__ import annotations

import hashlib
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from jobs.context import RunContext, default_run_id
from jobs.tasks import TASKS, run_task
from pipelines.core import catalog as cat
from pipelines.core.settings import Settings, replace
from tests.support.workspace import (
    SMALL_LAST,
    SMALL_SPEC,
    make_settings,
    prepare_history,
    without_docs,
)

pytestmark = pytest.mark.slow

NIGHTS = (SMALL_LAST - timedelta(days=1), SMALL_LAST)
# Forced, tiny (make_settings' caps), and a gate that adopts whatever it is.
TUNE = {"force": True, "min_lift": -1.0}


def _night(settings: Settings, ds, tasks=tuple(TASKS)) -> dict[str, dict]:
    return {t: run_task(t, RunContext(settings, ds, default_run_id(ds))) for t in tasks}


@pytest.fixture(scope="module")
def before(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("finetune") / "ws"
    prepare_history(without_docs(make_settings(root)), SMALL_SPEC, NIGHTS[0])
    return root


def _run(before: Path, dst: Path, tune: dict) -> tuple[Settings, dict, dict]:
    shutil.copytree(before, dst)
    settings = without_docs(make_settings(dst))
    first = _night(replace(settings, finetune=tune, gate={"tolerance": 1.0}), NIGHTS[0])
    second = _night(settings, NIGHTS[1])  # not forced, and not due on a Wednesday
    return settings, first, second


def test_a_fine_tuned_encoder_is_registered_adopted_and_used(before: Path,
                                                            tmp_path: Path) -> None:
    settings, first, second = _run(before, tmp_path / "ws", TUNE)
    lake = RunContext(settings, NIGHTS[1], "-").lake
    version = first["finetune"]["version"]
    assert version.startswith("20261013-") and lake.versions(cat.ENCODER_LINEAGE) == [version]
    lineage = lake.read(cat.ENCODER_LINEAGE, version=version)
    # It learnt only from days before the evaluation's 3-day holdout.
    assert lineage["days"]["last"] == (NIGHTS[0] - timedelta(days=3)).isoformat()
    assert sum(lineage["pairs"].values()) == 64 and set(lineage["pairs"]) == {"co", "next"}
    weights = lake.read_file(cat.ENCODER_MODEL, "model.safetensors", version=version)
    assert lineage["weights_sha256"] == hashlib.sha256(weights).hexdigest()
    assert lineage["config"]["method"] == "lora" and lineage["steps"] == 2

    # The same night embedded the catalog with it, and its evaluation decided.
    candidate = first["embed"]["candidate"]
    assert candidate["version"] == version and candidate["embedded"] == candidate["texts"]
    decision = lake.read(cat.ENCODER_DECISION, version=version)
    assert decision["ds"] == NIGHTS[0].isoformat() and decision["adopted"] is True
    assert first["evaluate"]["encoder"] == {"version": version, "adopted": True}
    metrics = lake.read(cat.METRICS, ds=NIGHTS[0])
    assert {"content", "content_tuned"} <= set(metrics["model"])

    # The next night: no fine-tune, the adopted encoder, the catalog from its cache.
    assert second["finetune"]["due"] is False and second["finetune"]["version"] is None
    assert second["embed"]["encoder"] == version
    assert second["embed"]["model"] == candidate["model"]
    items = second["embed"]["items"]
    assert items["reused"] >= candidate["texts"] - 1 and items["embedded"] <= 1
    assert second["embed"]["candidate"] is None
    vectors = lake.read(cat.ITEM_VECTORS, ds=NIGHTS[1])
    assert set(vectors["model"]) == {candidate["model"]}


def test_a_refused_encoder_leaves_the_frozen_one_in_use(before: Path, tmp_path: Path) -> None:
    settings, first, second = _run(before, tmp_path / "ws", {**TUNE, "min_lift": 10.0})
    lake = RunContext(settings, NIGHTS[1], "-").lake
    version = first["finetune"]["version"]
    decision = lake.read(cat.ENCODER_DECISION, version=version)
    assert decision["adopted"] is False and "not adopted" in decision["reason"]
    assert second["embed"]["encoder"] is None
    assert second["embed"]["model"] == first["embed"]["model"]  # the frozen encoder's key
    assert second["embed"]["candidate"] is None  # decided: no longer awaiting


def test_a_rerun_of_the_fine_tune_gives_the_same_version(before: Path, tmp_path: Path) -> None:
    shutil.copytree(before, tmp_path / "ws")
    settings = replace(without_docs(make_settings(tmp_path / "ws")), finetune=TUNE)
    tasks = ("validate", "aggregate", "finetune")
    first = _night(settings, NIGHTS[0], tasks)["finetune"]
    again = _night(settings, NIGHTS[0], ("finetune",))["finetune"]
    assert again["version"] == first["version"]
    lake = RunContext(settings, NIGHTS[0], "-").lake
    assert lake.versions(cat.ENCODER_LINEAGE) == [first["version"]]
