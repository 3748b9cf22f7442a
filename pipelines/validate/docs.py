"""Great Expectations Data Docs rendered from the stored verdicts of validated days.

A day's ``dq_results`` rows hold, per expectation, what GX reports (success, unexpected count,
element count, unexpected percent); with the day's suites (rebuilt from the code for that day)
they make GX validation results, and GX's site builder renders them. So the docs of any number
of days are one rendering pass, whoever computed the verdicts, and need no raw data. The
day-level rules (quarantine share, volume) are not GX expectations: they stay in dq_results
and the validate summary.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from pipelines.core.settings import ValidateSettings
from pipelines.validate.expectations import event_expectations, item_expectations


@dataclass(frozen=True)
class DayResults:
    ds: date
    dq: list[dict]  # the day's recs.dq_results rows


def _suites(ds: date, cfg: ValidateSettings) -> dict[str, list]:
    return {"events": event_expectations(ds, cfg), "items": item_expectations(ds)}


def validation_results(day: DayResults, cfg: ValidateSettings) -> dict[str, object]:
    """Per dataset, the day's verdicts as a GX ``ExpectationSuiteValidationResult``."""
    from great_expectations.core import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.core.run_identifier import RunIdentifier

    rows = {(r["dataset"], r["expectation"]): r for r in day.dq}
    run_id = RunIdentifier(run_name=f"ds={day.ds}",
                           run_time=datetime(day.ds.year, day.ds.month, day.ds.day, tzinfo=UTC))
    out = {}
    for dataset, suite in _suites(day.ds, cfg).items():
        results = []
        for expectation in suite:
            row = rows.get((dataset, expectation.meta["reason"]))
            if row is None:
                continue
            details = json.loads(row["details"])
            results.append(ExpectationValidationResult(
                success=bool(row["success"]), expectation_config=expectation.configuration,
                result={"element_count": details.get("element_count"),
                        "unexpected_count": int(row["unexpected_count"]),
                        "unexpected_percent": details.get("unexpected_percent")}))
        if not results:
            continue
        passed = sum(r.success for r in results)
        out[dataset] = ExpectationSuiteValidationResult(
            success=passed == len(results), results=results, suite_name=dataset,
            statistics={"evaluated_expectations": len(results),
                        "successful_expectations": passed,
                        "unsuccessful_expectations": len(results) - passed,
                        "success_percent": 100.0 * passed / len(results)},
            meta={"run_id": run_id,
                  "active_batch_definition": {"datasource_name": "recs",
                                              "data_connector_name": "lake",
                                              "data_asset_name": dataset,
                                              "batch_identifiers": {"ds": str(day.ds)}}})
    return out


def render(site_dir: Path, days: Iterable[DayResults], cfg: ValidateSettings) -> Path:
    """One Data Docs site of ``days`` in ``site_dir``; its index page."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    from pipelines.validate.gx_runner import gx_context

    context = gx_context(site_dir)
    for day in days:
        for dataset, result in validation_results(day, cfg).items():
            key = ValidationResultIdentifier(ExpectationSuiteIdentifier(name=dataset),
                                             result.meta["run_id"], f"ds={day.ds}")
            context.validation_results_store.set(key, result)
    context.build_data_docs(site_names=["recs"])
    return site_dir / "index.html"
