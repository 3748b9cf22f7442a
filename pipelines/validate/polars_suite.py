"""The GX expectation suites evaluated as polars expressions, at the rate of the preparation.

The suites stay Great Expectations objects (``pipelines.validate.expectations``): this module
reads each expectation's configuration (column, row condition, value set, bounds, ``mostly``)
and computes what GX's pandas engine computes for it, with GX's counting rules: rows outside the
row condition are not considered, map expectations skip nulls, ``unexpected_percent`` is over
the non-null rows (over all rows for the null checks), and an empty domain succeeds.
All expectations are computed in one pass over the frame, as flag columns. ``GxSession``
remains the reference: ``tests/contract/test_validation_evaluators.py`` checks that
both give the same outcomes row for row. An expectation type or row condition without a
translation raises, so a new expectation cannot be silently skipped.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from pipelines.core.errors import UntranslatedExpectation
from pipelines.validate.gx_runner import ROW_ID, ExpectationOutcome

_COMPARE: dict[str, Callable[[pl.Expr, Any], pl.Expr]] = {
    "==": operator.eq, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}
# Expectations on nullity count every considered row; the others only the non-null ones.
_NULL_CHECKS = {"expect_column_values_to_not_be_null", "expect_column_values_to_be_null"}


def condition_expr(condition: Any) -> pl.Expr:
    """A GX row condition (``Column("x") == v``, ``.is_null()``, ``&``, ``|``) as a polars
    predicate; a row whose predicate is null is outside the domain, as in GX."""
    from great_expectations.expectations import row_conditions as rc

    if isinstance(condition, rc.ComparisonCondition):
        op = getattr(condition.operator, "value", condition.operator)
        column = pl.col(condition.column.name)
        if op == "!=":  # pandas: a missing value differs from every value (Spark says null)
            return column.ne_missing(condition.parameter)
        return _COMPARE[op](column, condition.parameter)
    if isinstance(condition, rc.NullityCondition):
        column = pl.col(condition.column.name)
        return column.is_null() if condition.is_null else column.is_not_null()
    if isinstance(condition, rc.AndCondition):
        return pl.all_horizontal(*(condition_expr(c) for c in condition.conditions))
    if isinstance(condition, rc.OrCondition):
        return pl.any_horizontal(*(condition_expr(c) for c in condition.conditions))
    raise UntranslatedExpectation(f"row condition {condition!r} has no polars translation "
                                  '(or set [validate] evaluator = "gx")')


def _bounds(column: pl.Expr, low: Any, high: Any, strict_low: bool,
            strict_high: bool) -> pl.Expr:
    outside = pl.lit(False)
    if low is not None:
        outside = outside | ((column <= low) if strict_low else (column < low))
    if high is not None:
        outside = outside | ((column >= high) if strict_high else (column > high))
    return outside


def unexpected_expr(expectation: Any, considered: pl.Expr) -> pl.Expr:
    """True where a considered row fails the expectation (``considered``: the rows it
    counts; uniqueness is among them only)."""
    kind = expectation.expectation_type
    column = pl.col(expectation.column)
    if kind == "expect_column_values_to_not_be_null":
        return column.is_null()
    if kind == "expect_column_values_to_be_null":
        return column.is_not_null()
    if kind == "expect_column_values_to_be_in_set":
        return ~column.is_in(pl.Series(list(expectation.value_set)).implode())
    if kind == "expect_column_values_to_not_be_in_set":
        return column.is_in(pl.Series(list(expectation.value_set)).implode())
    if kind == "expect_column_values_to_be_between":
        return _bounds(column, expectation.min_value, expectation.max_value,
                       expectation.strict_min, expectation.strict_max)
    if kind == "expect_column_value_lengths_to_be_between":
        return _bounds(column.str.len_chars(), expectation.min_value, expectation.max_value,
                       False, False)
    if kind == "expect_column_values_to_not_match_regex":
        return column.str.contains(expectation.regex)
    if kind == "expect_column_values_to_be_unique":
        return pl.when(considered).then(column).is_duplicated()
    raise UntranslatedExpectation(f"{kind} has no polars translation "
                                  '(or set [validate] evaluator = "gx")')


def evaluate(frame: pl.DataFrame, expectations: list) -> list[ExpectationOutcome]:
    """Each expectation's outcome on ``frame`` (it has a ``_row`` column), as GX reports it.
    One pass computes every expectation's domain, considered and failing rows as flags."""
    flags = []
    for i, expectation in enumerate(expectations):
        domain = pl.lit(True)
        if expectation.row_condition is not None:
            domain = condition_expr(expectation.row_condition).fill_null(False)
        considered = domain
        if expectation.expectation_type not in _NULL_CHECKS:
            considered = domain & pl.col(expectation.column).is_not_null()
        failing = considered & unexpected_expr(expectation, considered).fill_null(False)
        flags += [domain.alias(f"d{i}"), considered.alias(f"c{i}"), failing.alias(f"u{i}")]
    marks = frame.select(pl.col(ROW_ID), *flags)
    counts = marks.select(pl.exclude(ROW_ID).sum()).row(0, named=True)
    outcomes = []
    for i, expectation in enumerate(expectations):
        kind = expectation.expectation_type
        element_count, unexpected = counts[f"d{i}"], counts[f"u{i}"]
        denominator = element_count if kind in _NULL_CHECKS else counts[f"c{i}"]
        failed = (marks.filter(pl.col(f"u{i}"))[ROW_ID].to_numpy().astype(np.int64)
                  if unexpected else np.zeros(0, dtype=np.int64))
        mostly = expectation.mostly if expectation.mostly is not None else 1.0
        success = denominator == 0 or (denominator - unexpected) / denominator >= mostly
        percent = unexpected / denominator * 100 if element_count and denominator else None
        outcomes.append(ExpectationOutcome(
            reason=(expectation.meta or {}).get("reason", kind),
            expectation=kind,
            column=expectation.column,
            success=bool(success),
            unexpected_count=int(unexpected),
            rows=np.sort(failed),
            details={"element_count": int(element_count), "unexpected_percent": percent},
        ))
    return outcomes


class PolarsSession:
    """Runs the suites on polars; the same ``run`` as ``GxSession`` (no Data Docs: those are
    rendered by ``pipelines.validate.docs`` from the stored outcomes)."""

    def run(self, name: str, frame: pl.DataFrame, expectations: list) -> list[ExpectationOutcome]:
        return evaluate(frame, expectations)
