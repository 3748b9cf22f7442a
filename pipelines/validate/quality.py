"""Day-level data-quality rules on top of the row verdicts: quarantine share and volume."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass

from pipelines.core.errors import DataQualityError
from pipelines.core.settings import ValidateSettings
from pipelines.validate.gx_runner import ExpectationOutcome


@dataclass(frozen=True)
class DayCheck:
    name: str
    success: bool
    unexpected_count: int
    details: dict


def quarantine_share(n_raw: int, n_quarantined: int, cfg: ValidateSettings) -> DayCheck:
    share = n_quarantined / n_raw if n_raw else 0.0
    return DayCheck("quarantine_share", share <= cfg.max_quarantine_share, n_quarantined,
                    {"share": round(share, 6), "limit": cfg.max_quarantine_share,
                     "raw": n_raw})


def volume(n_raw: int, trailing: list[int], cfg: ValidateSettings) -> DayCheck:
    """Raw volume against the median of the trailing days (skipped with fewer than 3 days)."""
    if len(trailing) < 3:
        return DayCheck("volume_vs_trailing_median", True, 0,
                        {"raw": n_raw, "trailing_days": len(trailing), "skipped": True})
    median = statistics.median(trailing)
    ratio = n_raw / median if median else float("inf")
    ok = cfg.min_volume_ratio <= ratio <= cfg.max_volume_ratio
    return DayCheck("volume_vs_trailing_median", ok, 0 if ok else n_raw,
                    {"raw": n_raw, "median": median, "ratio": round(ratio, 4),
                     "min_ratio": cfg.min_volume_ratio, "max_ratio": cfg.max_volume_ratio,
                     "trailing_days": len(trailing)})


def enforce(checks: list[DayCheck], accept: bool) -> list[str]:
    """Messages of the failed checks; raises unless the day is explicitly accepted."""
    failures = [f"{c.name} failed: {json.dumps(c.details, sort_keys=True)}"
                for c in checks if not c.success]
    if failures and not accept:
        raise DataQualityError("; ".join(failures) + " (set accept_anomalies to take the day)")
    return failures


def dq_rows(dataset: str, outcomes: list[ExpectationOutcome]) -> list[dict]:
    """One ``recs.dq_results`` row per expectation."""
    return [
        {"dataset": dataset, "expectation": o.reason, "success": o.success,
         "unexpected_count": o.unexpected_count,
         "details": json.dumps({"gx": o.expectation, "column": o.column, **o.details},
                               sort_keys=True, default=str)}
        for o in outcomes
    ]


def day_rows(checks: list[DayCheck]) -> list[dict]:
    return [
        {"dataset": "events", "expectation": c.name, "success": c.success,
         "unexpected_count": c.unexpected_count, "details": json.dumps(c.details, sort_keys=True)}
        for c in checks
    ]
