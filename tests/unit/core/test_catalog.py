"""The lake catalog: today's paths each belong to exactly one declaration, keys fill patterns,
"run X first" comes from the declaration, and records are checked when written and read."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from pipelines.core import catalog as cat
from pipelines.core.catalog import Lake
from pipelines.core.errors import UpstreamMissing
from pipelines.core.storage import Store

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "night_fingerprint.json"
D = date(2026, 10, 13)


def _golden_lake_paths() -> list[str]:
    return [p for p in json.loads(GOLDEN.read_text()) if not p.startswith("warehouse:")]


def test_every_path_of_a_real_lake_has_exactly_one_declaration() -> None:
    paths = _golden_lake_paths()
    assert len(paths) > 200
    for path in paths:
        owners = [d.name for d in cat.match(path)]
        assert len(owners) == 1, (path, owners)


def test_every_lake_declaration_is_used_by_a_real_lake() -> None:
    used = {cat.match(p)[0].name for p in _golden_lake_paths()}
    declared = {d.name for d in cat.DATASETS if not d.raw}
    assert declared == used


def test_keys_fill_the_pattern() -> None:
    assert cat.CLEAN_EVENTS.parts(ds=D) == ("clean", "events", "ds=2026-10-13",
                                            "part-0.parquet")
    assert cat.STAGED_LISTS.parts(ds=D, shards=4, shard=2) == (
        "staging", "ds=2026-10-13", "shards=4", "part-2.parquet")
    assert cat.EMBED_CACHE.partition_parent(model="m-fp32") == ("embeddings", "cache", "m-fp32")
    assert cat.MODEL_ARRAY.parts(version="v1", array="content_map") == (
        "models", "v1", "content_map.npy")
    with pytest.raises(ValueError, match="missing key"):
        cat.CLEAN_EVENTS.parts()


def test_require_names_the_task_that_writes_it(tmp_path: Path) -> None:
    lake = Lake(Store(str(tmp_path)))
    with pytest.raises(UpstreamMissing, match=r"features/ds=2026-10-13/users.parquet is "
                                              r"missing: run the 'aggregate' task for 2026-10-13"):
        lake.require(cat.USER_FEATURES, ds=D)


def test_days_window_and_partition_removal(tmp_path: Path) -> None:
    lake = Lake(Store(str(tmp_path)))
    frame = pl.DataFrame({"event_id": ["e"]})
    for day in (date(2026, 10, 1), date(2026, 10, 3), D):
        lake.write(cat.QUARANTINE_EVENTS, frame, ds=day)
    assert lake.days(cat.QUARANTINE_EVENTS) == [date(2026, 10, 1), date(2026, 10, 3), D]
    assert lake.window(cat.QUARANTINE_EVENTS, D, days=11) == [date(2026, 10, 3), D]
    assert lake.window(cat.QUARANTINE_EVENTS, D, days=11, include_end=False) == [
        date(2026, 10, 3)]
    lake.remove_partition(cat.QUARANTINE_EVENTS, ds=D)
    assert not (tmp_path / "quarantine" / "events" / f"ds={D}").exists()


def _summary(**facts) -> dict:
    return {"task": "train", "ds": str(D), "run_id": "r", "started_at": "a",
            "finished_at": "b", "seconds": 1.0, **facts}


def test_a_record_is_checked_when_written_and_when_read(tmp_path: Path) -> None:
    lake = Lake(Store(str(tmp_path)))
    lake.write(cat.TRAIN_SUMMARY, _summary(model_version="20261013-abc", users=3), ds=D)
    record = lake.read(cat.TRAIN_SUMMARY, ds=D)
    assert record.model_version == "20261013-abc"
    assert lake.read_dict(cat.TRAIN_SUMMARY, ds=D)["users"] == 3  # other facts are kept
    # A writer that renamed the field fails itself ...
    with pytest.raises(ValueError, match="model_version"):
        lake.write(cat.TRAIN_SUMMARY, _summary(version="x"), ds=D)
    # ... and a file written without it fails its reader with the task to run again.
    Store(str(tmp_path)).write_json(_summary(version="x"), *cat.TRAIN_SUMMARY.parts(ds=D))
    with pytest.raises(UpstreamMissing, match="model_version.*run the 'train' task again"):
        lake.read(cat.TRAIN_SUMMARY, ds=D)


def test_declared_columns_are_checked_on_write(tmp_path: Path) -> None:
    lake = Lake(Store(str(tmp_path)))
    with pytest.raises(ValueError, match="clean_events: frame lacks column"):
        lake.write(cat.CLEAN_EVENTS, pl.DataFrame({"event_id": ["e"]}), ds=D)


def test_the_raw_area_is_read_only(tmp_path: Path) -> None:
    raw = Lake(Store(str(tmp_path)), raw=True)
    with pytest.raises(ValueError, match="read-only"):
        raw.write(cat.RAW_EVENTS, b"", ds=D)
    with pytest.raises(ValueError, match="not a dataset of the raw area"):
        raw.exists(cat.CLEAN_EVENTS, ds=D)


def test_a_sparse_matrix_is_stored_as_scipy_reads_it_and_the_same_bytes_each_time() -> None:
    import io

    import numpy as np
    import scipy.sparse as sp

    matrix = sp.random(300, 200, density=0.05, format="csr", dtype=np.float32, random_state=0)
    stored = cat.npz_bytes(matrix)
    back = sp.load_npz(io.BytesIO(stored))
    assert back.format == "csr" and back.dtype == np.float32 and back.shape == matrix.shape
    assert (back != matrix).nnz == 0 and np.array_equal(back.indptr, matrix.indptr)
    assert cat.npz_bytes(matrix) == stored  # no member dates in the bytes
    empty = sp.load_npz(io.BytesIO(cat.npz_bytes(sp.csr_matrix((0, 3), dtype=np.float32))))
    assert empty.shape == (0, 3)
