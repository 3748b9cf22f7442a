"""The model registry: one folder per model version under ``lake/models/<version>/``.

| file | what |
|---|---|
| `users.parquet` | `user_id, heavy` in factor-row order |
| `items.parquet` | `item_id, cold` in factor-row order |
| `user_factors.npy`, `item_factors.npy` | ALS factors (cold items: mapped from their embedding) |
| `item_vectors.npy`, `item_signals.npy`, `user_interest.npy` | the fusion's other inputs |
| `content_map.npy` | the ridge map, embedding dim x factors |
| `fusion.json` | feature standardisation and the weights per user segment |
| `config.json`, `lineage.json` | the settings and the inputs (with hashes) it was fitted from |
| `metrics.json` | the holdout metrics of the run that published it (written at publish) |

The version is ``<ds>-<hash of lineage and config>``: a rerun of the same ``ds`` on the same
inputs gives the same version and overwrites the same files with the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import polars as pl

from pipelines.core.failpoints import failpoint
from pipelines.core.storage import Store
from pipelines.model.hybrid import Base, Fusion, Hybrid

ARRAYS = ("user_factors", "item_factors", "item_vectors", "item_signals", "user_interest",
          "content_map")


def model_version(ds_compact: str, lineage: dict, config: dict) -> str:
    digest = hashlib.sha256(json.dumps({"lineage": lineage, "config": config},
                                       sort_keys=True).encode()).hexdigest()[:10]
    return f"{ds_compact}-{digest}"


def _save_array(store: Store, array: np.ndarray, *parts: str) -> None:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    store.write_bytes(buf.getvalue(), *parts, quiet=True)


def _load_array(store: Store, *parts: str) -> np.ndarray:
    return np.load(io.BytesIO(store.read_bytes(*parts)), allow_pickle=False)


def save_hybrid(store: Store, version: str, hybrid: Hybrid, config: dict,
                lineage: dict) -> None:
    base = ("models", version)
    b = hybrid.base
    store.write_parquet(pl.DataFrame({"user_id": b.user_ids, "heavy": hybrid.heavy}),
                        *base, "users.parquet", quiet=True)
    store.write_parquet(pl.DataFrame({"item_id": b.item_ids, "cold": b.cold}),
                        *base, "items.parquet", quiet=True)
    arrays = {"user_factors": b.user_factors, "item_factors": b.item_factors,
              "item_vectors": b.item_vectors, "item_signals": b.item_signals,
              "user_interest": hybrid.interest, "content_map": b.content_map}
    for name in ARRAYS:
        _save_array(store, arrays[name], *base, f"{name}.npy")
    failpoint("train:saving")
    store.write_json(hybrid.fusion.to_dict(), *base, "fusion.json", quiet=True)
    store.write_json(config, *base, "config.json", quiet=True)
    store.write_json(lineage, *base, "lineage.json")


def load_hybrid(store: Store, version: str) -> Hybrid:
    """The fitted hybrid as saved."""
    base = ("models", version)
    users = store.read_parquet(*base, "users.parquet")
    items = store.read_parquet(*base, "items.parquet")
    a = {name: _load_array(store, *base, f"{name}.npy") for name in ARRAYS}
    b = Base(user_ids=users["user_id"], user_factors=a["user_factors"],
             item_ids=items["item_id"], item_factors=a["item_factors"],
             item_vectors=a["item_vectors"], cold=items["cold"].to_numpy(),
             item_signals=a["item_signals"], content_map=a["content_map"],
             n_warm_fit=0, als=None, als_item_ids=None)
    return Hybrid(base=b, fusion=Fusion.from_dict(store.read_json(*base, "fusion.json")),
                  interest=a["user_interest"], heavy=users["heavy"].to_numpy())
