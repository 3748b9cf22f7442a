"""The model registry: what one model version holds, under ``lake/models/<version>/``.

| file | what |
|---|---|
| `users.parquet`, `items.parquet` | `user_id`, `item_id` in row order of every array |
| `<array>.npy` | ALS factors, embeddings, the interest memory, item and user statistics |
| `<matrix>.npz` | what users saw and did last, item neighbours and successors, categories |
| `ranker.json` | the LightGBM boosters and what they were trained on (absent: no ranker) |
| `config.json`, `lineage.json` | the settings and the inputs (with hashes) it was fitted from |
| `metrics.json` | the holdout metrics and decision of the run that published it |

The version is ``<ds>-<hash of lineage and config>``: a rerun of the same ``ds`` on the same
inputs gives the same version and the same bytes. This module turns a fitted model into those
parts and back; the train and publish tasks write them through the lake catalog.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl
import scipy.sparse as sp

from pipelines.core.settings import Settings
from pipelines.model.ranker import Ranker
from pipelines.model.recommender import Model
from pipelines.model.retrieval import INPUT_COLUMNS, AsOf, Retrieval, content_vectors

# Not ``content``: ``from_parts`` computes it from ``recent`` and ``item_vectors`` (the file
# would be the largest of a version).
ARRAYS = ("user_factors", "item_factors", "als_factors", "item_vectors", "interest",
          "item_stats", "user_stats", "item_category", "als_warm")
MATRICES = ("seen", "recent", "neighbors", "follows", "user_category")


def model_version(ds_compact: str, lineage: dict, config: dict) -> str:
    digest = hashlib.sha256(json.dumps({"lineage": lineage, "config": config},
                                       sort_keys=True).encode()).hexdigest()[:10]
    return f"{ds_compact}-{digest}"


def frame_digest(frame: pl.DataFrame) -> str:
    """sha256 of the frame's content, the same whichever engine computed it: columns by name,
    integers as Int64, floats to 12 significant digits (engines may differ in the last bit of a
    mean), rows sorted (an engine's group-by has no order), in one chunk (the bytes of an IPC
    file depend on how rows are split into batches)."""
    canon = frame.select(
        pl.col(c).round_sig_figs(12).cast(pl.Float64) if t.is_float()
        else pl.col(c).cast(pl.Int64) if t.is_integer() else pl.col(c)
        for c, t in sorted(frame.schema.items()))
    keys = [c for c, t in canon.schema.items() if not t.is_nested()]
    if keys and canon.height:
        canon = canon.sort(keys, nulls_last=True)
    buf = io.BytesIO()
    canon.rechunk().write_ipc(buf, compression="uncompressed")
    return hashlib.sha256(buf.getvalue()).hexdigest()


def input_digests(asof: AsOf) -> dict[str, str]:
    """A digest of the columns a fit reads from each of the inputs ``asof`` has."""
    return {name: frame_digest(frame.select(columns)) for name, columns in INPUT_COLUMNS.items()
            if (frame := getattr(asof, name)) is not None}


def lineage(ds: str, partitions: Mapping[str, str], current: AsOf,
            splits: list[tuple[AsOf, pl.DataFrame]],
            known: Mapping[date, dict[str, str]] | None = None) -> dict:
    """The ``ds``, the input partitions with their hashes, and a digest of the columns the fit
    read from each of its inputs and from those of every training split of the ranker;
    ``known``: the ``input_digests`` already computed, by the inputs' day."""
    known = known or {}
    digests = {}
    for prefix, asof in (("", current), *((f"split{j}_", a) for j, (a, _) in enumerate(splits))):
        of_day = known.get(asof.day) or input_digests(asof)
        digests.update({prefix + name: digest for name, digest in of_day.items()})
    for j, (_, truth) in enumerate(splits):
        digests[f"split{j}_truth"] = frame_digest(truth)
    return {"ds": ds, "partitions": dict(partitions), "frames": digests}


def fit_config(settings: Settings, backend: str) -> dict:
    """The settings a fit depends on, with the ALS backend as resolved on this worker (the GPU
    and the Spark master give other factors)."""
    s = settings
    return json.loads(json.dumps({
        "trainer": s.trainer, "backend": backend, "model": s.model.model_dump(),
        "retrieval": s.retrieval.model_dump(), "ranker": s.ranker.model_dump(),
        "features": s.features.model_dump(), "embed": s.embed.model_dump()}, default=list))


@dataclass(frozen=True)
class Parts:
    """A model version as the files it is stored in."""

    users: pl.DataFrame
    items: pl.DataFrame
    arrays: dict[str, np.ndarray]
    matrices: dict[str, sp.csr_matrix]
    ranker: str | None  # Ranker.to_json()


def to_parts(model: Model) -> Parts:
    r = model.retrieval
    return Parts(users=pl.DataFrame({"user_id": r.user_ids}),
                 items=pl.DataFrame({"item_id": r.item_ids}),
                 arrays={name: np.asarray(getattr(r, name)) for name in ARRAYS},
                 matrices={name: sp.csr_matrix(getattr(r, name)) for name in MATRICES},
                 ranker=model.ranker.to_json() if model.ranker is not None else None)


def from_parts(parts: Parts) -> Model:
    """The fitted model as saved."""
    retrieval = Retrieval(user_ids=parts.users["user_id"], item_ids=parts.items["item_id"],
                          content=content_vectors(parts.matrices["recent"],
                                                  parts.arrays["item_vectors"]),
                          **parts.arrays, **parts.matrices)
    ranker = Ranker.from_json(parts.ranker) if parts.ranker is not None else None
    return Model(retrieval=retrieval, ranker=ranker)


def metrics_record(ds: str, run_id: str, metrics: pl.DataFrame, decision: dict) -> dict:
    """What a published version keeps of the run that published it."""
    return {"ds": ds, "run_id": run_id, "metrics": metrics.to_dicts(), "decision": decision}
