"""User-interest memory: the EMA on a hand-computed case, and where a night starts from."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from pipelines.embed.interest import empty_state, starting_state, update_interest

D0, D1 = date(2026, 1, 1), date(2026, 1, 2)


def _vectors(rows: dict[str, list[float]]) -> pl.DataFrame:
    return pl.DataFrame({"user_id": list(rows)}).with_columns(
        pl.Series("vector", np.array(list(rows.values()), dtype=np.float32),
                  dtype=pl.Array(pl.Float32, 2)))


def _as_dict(state: pl.DataFrame) -> dict[str, tuple]:
    return {r["user_id"]: (r["updated"], r["updates"], list(r["vector"]))
            for r in state.iter_rows(named=True)}


def test_ema_on_a_hand_computed_case() -> None:
    prev = _vectors({"a": [1.0, 0.0], "c": [0.0, 1.0]}).with_columns(
        pl.lit(D0).alias("updated"), pl.lit(2, dtype=pl.Int32).alias("updates"))
    today = _vectors({"a": [0.0, 1.0], "b": [3.0, 4.0]})
    got = _as_dict(update_interest(prev, today, alpha=0.25, ds=D1))
    # a: 0.75 * (1, 0) + 0.25 * (0, 1) = (0.75, 0.25), norm sqrt(0.625)
    norm = 0.625 ** 0.5
    assert got["a"][:2] == (D1, 3)
    np.testing.assert_allclose(got["a"][2], [0.75 / norm, 0.25 / norm], rtol=1e-6)
    assert got["b"][:2] == (D1, 1)                      # new: starts at h, normalised
    np.testing.assert_allclose(got["b"][2], [0.6, 0.8], rtol=1e-6)
    assert got["c"] == (D0, 2, [0.0, 1.0])              # inactive: kept as it was
    assert list(got) == ["a", "b", "c"]


def test_first_day_and_alpha_one() -> None:
    today = _vectors({"a": [0.0, 2.0]})
    first = update_interest(empty_state(2), today, alpha=0.3, ds=D0)
    assert _as_dict(first) == {"a": (D0, 1, [0.0, 1.0])}
    moved = update_interest(first, _vectors({"a": [1.0, 0.0]}), alpha=1.0, ds=D1)
    assert _as_dict(moved)["a"][2] == [1.0, 0.0]        # alpha 1 forgets the past


def test_dimension_mismatch_is_an_error() -> None:
    prev = update_interest(empty_state(2), _vectors({"a": [1.0, 0.0]}), 0.5, D0)
    today = pl.DataFrame({"user_id": ["a"]}).with_columns(
        pl.Series("vector", np.ones((1, 3), dtype=np.float32), dtype=pl.Array(pl.Float32, 3)))
    with pytest.raises(ValueError, match="2-d vectors"):
        update_interest(prev, today, 0.5, D1)


# --- the embed task over several nights ------------------------------------------------------


def test_a_night_starts_from_the_latest_state_of_the_same_model_only() -> None:
    stored = update_interest(empty_state(2), _vectors({"u": [1.0, 0.0]}), 0.5, D0).with_columns(
        pl.lit("m1").alias("model"))
    state, since = starting_state(stored, D0, "m1", 2)
    assert since == D0 and state.equals(stored.drop("model"))
    state, since = starting_state(stored, D0, "m2", 2)  # another encoder: start afresh
    assert since is None and state.is_empty() and state.schema["vector"].size == 2
    state, since = starting_state(None, None, "m1", 2)  # the first night
    assert since is None and state.is_empty()
