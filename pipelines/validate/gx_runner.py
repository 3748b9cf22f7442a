"""Running expectation suites with Great Expectations 1.x on a pandas or Spark DataFrame: the
reference evaluator (``[validate] evaluator = "gx"``).

Each expectation carries ``meta={"reason": ...}``: the name a failing row is quarantined under.
Results come back per expectation with the ``_row`` ids of the rows that failed it, so the caller
can give every row its own verdict.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import polars as pl

ROW_ID = "_row"
log = logging.getLogger("recs.gx")


@dataclass(frozen=True)
class ExpectationOutcome:
    reason: str
    expectation: str          # GX expectation type, e.g. expect_column_values_to_not_be_null
    column: str | None
    success: bool
    unexpected_count: int
    rows: np.ndarray          # the ``_row`` ids that failed it (empty for table-level checks)
    details: dict[str, Any]


class SuiteRunner(Protocol):
    """Evaluates an expectation suite on a prepared frame: GX itself (``GxSession``) or its
    polars translation (``pipelines.validate.polars_suite.PolarsSession``)."""

    def run(self, name: str, frame: pl.DataFrame,
            expectations: list) -> list[ExpectationOutcome]: ...


def gx_context(docs_dir: Path | None):
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # Progress bars only clutter task logs.
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    if docs_dir is not None:
        context.add_data_docs_site(
            site_name="recs",
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                                  "base_directory": str(docs_dir)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    return context


class GxSession:
    """One ephemeral GX context that validates named frames (Data Docs are rendered from the
    stored verdicts, whoever computed them: ``pipelines.validate.docs``)."""

    def __init__(self, engine: str = "pandas", spark: Any = None) -> None:
        if engine == "spark" and spark is None:
            raise ValueError("engine='spark' needs a Spark session")
        self.engine = engine
        self.spark = spark
        self.context = gx_context(None)
        self.source = (self.context.data_sources.add_spark("recs") if engine == "spark"
                       else self.context.data_sources.add_pandas("recs"))

    def to_engine(self, frame: pl.DataFrame) -> Any:
        """The prepared polars frame as a pandas or a Spark DataFrame.

        Only the scalar columns the suites read travel (timestamps go as ``*_us`` integers, so
        both engines compare the same numbers).
        """
        keep = [c for c, t in frame.schema.items() if not isinstance(t, pl.Datetime)]
        frame = frame.select(keep)
        if self.engine == "spark":
            return self.spark.createDataFrame(frame.to_arrow())
        return frame.to_pandas()

    def run(self, name: str, frame: pl.DataFrame, expectations: list) -> list[ExpectationOutcome]:
        """Validate a prepared frame (it has a ``_row`` column) on this session's engine."""
        import great_expectations as gx

        context = self.context
        batch = self.source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(name)
        suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch, suite=suite))
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=name, validation_definitions=[definition], actions=[],
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_ID],
                           "return_unexpected_index_query": False},
        ))
        run = checkpoint.run(batch_parameters={"dataframe": self.to_engine(frame)})
        (result,) = run.run_results.values()
        # GX groups results by the metrics they share; report them in the suite's order.
        order = {e.id: i for i, e in enumerate(suite.expectations)}
        results = sorted(result.results, key=lambda r: order[r.expectation_config.id])
        return [_outcome(r) for r in results]


def _outcome(r) -> ExpectationOutcome:
    config = r.expectation_config
    exc = r.exception_info or {}
    if exc.get("raised_exception"):
        raise RuntimeError(f"{config.type} on {config.kwargs.get('column')} could not run: "
                           f"{exc.get('exception_message')}")
    result = r.result or {}
    rows = np.array([d[ROW_ID] for d in result.get("unexpected_index_list") or []],
                    dtype=np.int64)
    return ExpectationOutcome(
        reason=(config.meta or {}).get("reason", config.type),
        expectation=config.type,
        column=config.kwargs.get("column"),
        success=bool(r.success),
        unexpected_count=int(result.get("unexpected_count") or 0),
        rows=rows,
        details={k: v for k, v in result.items()
                 if k in ("element_count", "unexpected_percent", "observed_value")},
    )
