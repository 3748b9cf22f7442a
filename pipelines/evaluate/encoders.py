"""Frozen against fine-tuned: whether the night adopts the encoder awaiting its evaluation.

The two encoders are compared on what the encoder alone decides: content similarity's lists
(the mean vector of a user's recent items against every item's), built from each encoder's
item vectors for the same test users of the night's holdout. The fine-tuned one is adopted
when its lift over the one in use on ``gate.metric@gate.k`` is above ``1 + finetune.min_lift``
and the lower end of the lift's 95 % interval (paired bootstrap over the test users) reaches
``1 - gate.tolerance``: better on the night's evidence, and not likely much worse.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl

from pipelines.core.settings import Settings
from pipelines.embed.encoder import vector_matrix
from pipelines.evaluate.holdout import bootstrap_lift, evaluation_lists
from pipelines.evaluate.metrics import PER_USER
from pipelines.model.recommender import Model
from pipelines.model.retrieval import unit_rows

IN_USE, TUNED = "content", "content_tuned"


def with_item_vectors(model: Model, vectors: pl.DataFrame) -> Model:
    """``model`` with the item vectors (``item_id, vector``) of another encoder, and the
    content profiles they make; items without a vector get zeros, as in retrieval."""
    ret = model.retrieval
    rows = (pl.DataFrame({"item_id": ret.item_ids}).with_row_index("_i")
            .join(vectors.select("item_id", "vector"), on="item_id"))
    emb = np.zeros((ret.n_items, vectors.schema["vector"].size), dtype=np.float32)
    emb[rows["_i"].to_numpy()] = vector_matrix(rows)
    emb = unit_rows(emb)
    content = unit_rows(np.asarray(ret.recent @ emb, dtype=np.float32))
    return replace(model, retrieval=replace(ret, item_vectors=emb, content=content))


def tuned_lists(model: Model, vectors: pl.DataFrame, truth: pl.DataFrame,
                settings: Settings) -> pl.DataFrame:
    """Content similarity's lists for the truth users by the fine-tuned encoder."""
    return evaluation_lists(with_item_vectors(model, vectors), truth, settings,
                            names=(IN_USE,))[IN_USE]


def decide_encoder(lists: dict[str, pl.DataFrame], truth: pl.DataFrame, settings: Settings,
                   ds: str) -> dict:
    """The decision record of the version awaiting it: adopted or not, with the numbers."""
    gate = settings.gate
    per_user = {m: PER_USER[gate.metric](lists[m], truth, gate.k).sort("user_id")["value"]
                .to_numpy() for m in (IN_USE, TUNED)}
    lift, lo, hi = bootstrap_lift(per_user[TUNED], per_user[IN_USE], settings.eval.bootstrap,
                                  seed=settings.model.seed)
    need = 1 + settings.finetune.min_lift
    floor = 1 - gate.tolerance
    adopted = bool(np.isfinite(lift) and lift > need and np.isfinite(lo) and lo >= floor)
    metric = f"{gate.metric}@{gate.k}"
    reason = (f"content similarity by the fine-tuned encoder: {metric} lift {lift:.3f} over "
              f"the encoder in use (interval {lo:.3f}-{hi:.3f}); ")
    reason += ("adopted from the next night" if adopted else
               f"not adopted: it needs a lift above {need:.3f} with an interval from "
               f"{floor:.3f} up")
    return {"ds": ds, "adopted": adopted, "reason": reason, "metric": gate.metric, "k": gate.k,
            "in_use": float(per_user[IN_USE].mean()) if len(truth) else 0.0,
            "tuned": float(per_user[TUNED].mean()) if len(truth) else 0.0,
            "lift": lift, "lift_lo": lo, "lift_hi": hi, "users": len(per_user[TUNED])}
