"""The quality gate: a model is published only if its holdout numbers are good enough.

Both checks are on ``gate.metric@gate.k``. The hybrid must beat popularity on this run's holdout
by ``min_lift_over_popularity``; and its lift over popularity (hybrid / popularity) must not
fall more than ``tolerance`` below the lift of the last run published before this ``ds``. The
lift, not the raw value, is compared across days because each day has its own holdout: a
harder day lowers both models alike, while a worse model lowers only the lift.
``force_publish`` publishes anyway and says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import polars as pl

from pipelines.core.settings import GateSettings


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    forced: bool
    reason: str
    numbers: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)


def _value(metrics: pl.DataFrame, model: str, cfg: GateSettings) -> float | None:
    row = metrics.filter((pl.col("model") == model) & (pl.col("metric") == cfg.metric)
                         & (pl.col("k") == cfg.k))
    return float(row["value"][0]) if row.height else None


def lift(metrics: pl.DataFrame, cfg: GateSettings) -> float | None:
    """hybrid / popularity on the gate metric, when both were evaluated."""
    hybrid, popularity = _value(metrics, "hybrid", cfg), _value(metrics, "popularity", cfg)
    if hybrid is None or not popularity:
        return None
    return hybrid / popularity


def judge(metrics: pl.DataFrame, previous: float | None, cfg: GateSettings) -> GateVerdict:
    """``metrics``: this run's ``model, metric, k, value``; ``previous``: the lift of the last
    published run (None when nothing was published before or it was not evaluated)."""
    name = f"{cfg.metric}@{cfg.k}"
    hybrid, popularity = _value(metrics, "hybrid", cfg), _value(metrics, "popularity", cfg)
    current = lift(metrics, cfg)
    numbers = {k: v for k, v in (("hybrid", hybrid), ("popularity", popularity),
                                 ("lift", current), ("previous_lift", previous))
               if v is not None}
    if hybrid is None or popularity is None:
        return GateVerdict(True, False, f"not evaluated (no held-out interactions): {name} "
                                    "unknown, published unchecked", numbers)
    problems = []
    need = popularity * (1 + cfg.min_lift_over_popularity)
    if hybrid <= need:
        problems.append(f"hybrid {name} {hybrid:.4f} does not beat popularity {popularity:.4f} "
                        f"by more than {cfg.min_lift_over_popularity:.0%} "
                        f"(needs more than {need:.4f})")
    if previous is not None and current is not None and current < previous * (1 - cfg.tolerance):
        problems.append(f"lift over popularity {current:.3f} is more than {cfg.tolerance:.0%} "
                        f"below the last published model's {previous:.3f}")
    if not problems:
        against = f" (lift {current:.3f}" + (f", last published {previous:.3f})"
                                            if previous is not None else ")") \
            if current is not None else ""
        return GateVerdict(True, False, f"hybrid {name} {hybrid:.4f} vs popularity "
                                    f"{popularity:.4f}{against}", numbers)
    reason = "; ".join(problems)
    if cfg.force_publish:
        return GateVerdict(True, True, f"force_publish despite: {reason}", numbers)
    return GateVerdict(False, False, reason, numbers)
