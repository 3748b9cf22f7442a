"""The quality gate: the hybrid must beat popularity, and its lift must not fall far below the
last published model's; forcing publishes anyway and says so."""

from __future__ import annotations

import polars as pl
import pytest

from pipelines.core.settings import GateSettings
from pipelines.evaluate.gate import judge, lift

# --- the quality gate ------------------------------------------------------------------------

def _metrics(hybrid: float | None, popularity: float | None) -> pl.DataFrame:
    rows = [(m, "ndcg", 10, v) for m, v in (("hybrid", hybrid), ("popularity", popularity))
            if v is not None]
    return pl.DataFrame(rows, schema={"model": pl.String, "metric": pl.String,
                                      "k": pl.Int32, "value": pl.Float64}, orient="row")


def test_gate_passes_a_model_that_beats_popularity() -> None:
    verdict = judge(_metrics(0.30, 0.20), previous=1.4, cfg=GateSettings())
    assert verdict.passed and not verdict.forced
    assert verdict.numbers == {"hybrid": 0.30, "popularity": 0.20,
                               "lift": pytest.approx(1.5), "previous_lift": 1.4}


def test_gate_refuses_a_model_below_popularity_or_the_last_lift() -> None:
    cfg = GateSettings(min_lift_over_popularity=0.1, tolerance=0.1)
    below = judge(_metrics(0.21, 0.20), previous=None, cfg=cfg)
    assert not below.passed and "does not beat popularity" in below.reason
    worse = judge(_metrics(0.30, 0.20), previous=1.8, cfg=cfg)  # lift 1.5 < 1.8 * 0.9
    assert not worse.passed and "below the last published" in worse.reason
    assert judge(_metrics(0.30, 0.20), previous=1.6, cfg=cfg).passed  # within tolerance


def test_force_publish_and_unevaluated_runs() -> None:
    forced = judge(_metrics(0.1, 0.2), None, GateSettings(force_publish=True))
    assert forced.passed and forced.forced and forced.reason.startswith("force_publish")
    unevaluated = judge(_metrics(None, None), None, GateSettings())
    assert unevaluated.passed and "not evaluated" in unevaluated.reason
    assert lift(_metrics(0.3, 0.0), GateSettings()) is None
