"""The model registry: what one model version holds, under ``lake/models/<version>/``.

| file | what |
|---|---|
| `users.parquet` | `user_id, heavy` in factor-row order |
| `items.parquet` | `item_id, cold` in factor-row order |
| `user_factors.npy`, `item_factors.npy` | ALS factors (cold items: mapped from their embedding) |
| `item_vectors.npy`, `item_signals.npy`, `user_interest.npy` | the fusion's other inputs |
| `content_map.npy` | the ridge map, embedding dim x factors |
| `fusion.json` | feature standardisation and the weights per user segment |
| `config.json`, `lineage.json` | the settings and the inputs (with hashes) it was fitted from |
| `metrics.json` | the holdout metrics and gate verdict of the run that published it |

The version is ``<ds>-<hash of lineage and config>``: a rerun of the same ``ds`` on the same
inputs gives the same version and the same bytes. This module turns a fitted hybrid into those
parts and back; the train and publish tasks write them through the lake catalog.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from pipelines.core.settings import Settings
from pipelines.model.hybrid import INPUT_COLUMNS, AsOf, Base, Fusion, Hybrid

ARRAYS = ("user_factors", "item_factors", "item_vectors", "item_signals", "user_interest",
          "content_map")


def model_version(ds_compact: str, lineage: dict, config: dict) -> str:
    digest = hashlib.sha256(json.dumps({"lineage": lineage, "config": config},
                                       sort_keys=True).encode()).hexdigest()[:10]
    return f"{ds_compact}-{digest}"


def frame_digest(frame: pl.DataFrame) -> str:
    """sha256 of the frame's content, the same whichever engine computed it: columns by name,
    integers as Int64, floats to 12 significant digits (engines may differ in the last bit of a
    mean), in one chunk (the bytes of an IPC file depend on how rows are split into batches)."""
    canon = frame.select(
        pl.col(c).round_sig_figs(12).cast(pl.Float64) if t.is_float()
        else pl.col(c).cast(pl.Int64) if t.is_integer() else pl.col(c)
        for c, t in sorted(frame.schema.items()))
    buf = io.BytesIO()
    canon.rechunk().write_ipc(buf, compression="uncompressed")
    return hashlib.sha256(buf.getvalue()).hexdigest()


def lineage(ds: str, partitions: Mapping[str, str], current: AsOf,
            validation: tuple[AsOf, pl.DataFrame] | None) -> dict:
    """The ``ds``, the input partitions with their hashes, and a digest of the columns the fit
    read from each of its inputs and those of its validation split."""
    frames = {}
    for prefix, asof in (("", current), ("validation_", validation and validation[0])):
        for name, columns in INPUT_COLUMNS.items():
            frame = getattr(asof, name) if asof is not None else None
            if frame is not None:
                frames[prefix + name] = frame.select(columns)
    if validation is not None:
        frames["validation_truth"] = validation[1]
    return {"ds": ds, "partitions": dict(partitions),
            "frames": {k: frame_digest(v) for k, v in frames.items()}}


def fit_config(settings: Settings, backend: str) -> dict:
    """The settings a fit depends on, with the ALS backend as resolved on this worker (the GPU
    and the Spark master give other factors)."""
    s = settings
    return json.loads(json.dumps({
        "trainer": s.trainer, "backend": backend, "model": s.model.model_dump(),
        "hybrid": s.hybrid.model_dump(), "features": s.features.model_dump(),
        "embed": s.embed.model_dump()}, default=list))


@dataclass(frozen=True)
class Parts:
    """A model version as the files it is stored in."""

    users: pl.DataFrame
    items: pl.DataFrame
    arrays: dict[str, np.ndarray]
    fusion: dict[str, Any]


def to_parts(hybrid: Hybrid) -> Parts:
    b = hybrid.base
    return Parts(
        users=pl.DataFrame({"user_id": b.user_ids, "heavy": hybrid.heavy}),
        items=pl.DataFrame({"item_id": b.item_ids, "cold": b.cold}),
        arrays={"user_factors": b.user_factors, "item_factors": b.item_factors,
                "item_vectors": b.item_vectors, "item_signals": b.item_signals,
                "user_interest": hybrid.interest, "content_map": b.content_map},
        fusion=hybrid.fusion.to_dict(),
    )


def from_parts(parts: Parts) -> Hybrid:
    """The fitted hybrid as saved."""
    a = parts.arrays
    b = Base(user_ids=parts.users["user_id"], user_factors=a["user_factors"],
             item_ids=parts.items["item_id"], item_factors=a["item_factors"],
             item_vectors=a["item_vectors"], cold=parts.items["cold"].to_numpy(),
             item_signals=a["item_signals"], content_map=a["content_map"],
             n_warm_fit=0, als=None, als_item_ids=None)
    return Hybrid(base=b, fusion=Fusion.from_dict(parts.fusion), interest=a["user_interest"],
                  heavy=parts.users["heavy"].to_numpy())


def metrics_record(ds: str, run_id: str, metrics: pl.DataFrame, gate: dict) -> dict:
    """What a published version keeps of the run that published it."""
    return {"ds": ds, "run_id": run_id, "metrics": metrics.to_dicts(), "gate": gate}
