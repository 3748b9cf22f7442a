"""The polars translation of the suites against GX itself: the same outcome for every
expectation (success, counts, failing rows, details), the same ``dq_results`` rows and the same
row verdicts, on randomly corrupted days and on hand-made catalog rows. The Spark engine joins
the comparison in ``tests/integration/test_validate_evaluators.py``."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings

from pipelines.core.contracts import EVENT_COLUMNS, EVENT_REQUIRED, ITEM_COLUMNS, ITEM_REQUIRED
from pipelines.core.errors import UntranslatedExpectation
from pipelines.core.settings import ValidateSettings
from pipelines.validate import polars_suite, quality
from pipelines.validate.expectations import event_expectations, item_expectations
from pipelines.validate.gx_runner import ExpectationOutcome, GxSession
from pipelines.validate.polars_suite import PolarsSession
from pipelines.validate.rows import (
    concat_files,
    conform,
    prepare_events,
    validate_events,
    validate_items,
)
from tests.support.corrupt_days import (
    ACCEPTED,
    CATALOG,
    CFG,
    DS,
    Day,
    apply,
    clean_day,
    corruptions,
)


def _comparable(outcomes: list[ExpectationOutcome]) -> list[tuple]:
    return [(o.reason, o.expectation, o.column, o.success, o.unexpected_count,
             o.rows.tolist(), o.details) for o in outcomes]


def assert_same(run) -> None:
    """``run(session)`` -> (verdict, outcomes) gives the same on both evaluators."""
    reference, reference_outcomes = run(GxSession("pandas"))
    polars, polars_outcomes = run(PolarsSession())
    assert _comparable(polars_outcomes) == _comparable(reference_outcomes)
    assert quality.dq_rows("x", polars_outcomes) == quality.dq_rows("x", reference_outcomes)
    assert polars.clean.equals(reference.clean)
    assert polars.quarantine.equals(reference.quarantine)
    assert polars.n_duplicates == reference.n_duplicates


def _events_frame(rows: list[dict]) -> pl.DataFrame:
    frame = pl.DataFrame(rows, schema={c: pl.String for c in EVENT_COLUMNS})
    return concat_files([conform(frame, EVENT_COLUMNS, EVENT_REQUIRED, "e.jsonl")],
                        EVENT_COLUMNS)


@settings(max_examples=30, deadline=None)
@given(corruptions)
def test_corrupted_days_get_the_same_outcomes_row_for_row(ops) -> None:
    day = Day(clean_day())
    for op in ops:
        apply(day, op)
    raw = _events_frame(day.rows)
    assert_same(lambda s: validate_events(
        raw, DS, pl.Series(CATALOG), pl.Series(ACCEPTED, dtype=pl.String), CFG, s))


def test_edge_values_get_the_same_outcomes() -> None:
    base = {"event_id": "e", "user_id": "u", "item_id": CATALOG[0], "event_type": "rate",
            "ts": "2026-10-02T10:00:00Z", "value": "3", "text": ""}
    rows = [{**base, "event_id": f"e{k}", **change} for k, change in enumerate([
        {}, {"value": "nan"}, {"value": "inf"}, {"value": "-inf"}, {"value": "1e400"},
        {"value": "1"}, {"value": "5"}, {"value": "0.99999"}, {"event_type": "view",
                                                              "value": "-0"},
        {"event_type": "view", "value": "-1e-9"}, {"text": "é" * CFG.max_text_chars},
        {"text": "é" * (CFG.max_text_chars + 1)}, {"text": None}, {"event_id": "e0"},
        {"event_id": "e0", "ts": "2026-10-02T09:00:00Z"}, {"event_id": ACCEPTED[0]},
        {"ts": "2026-10-02T23:59:59.999999Z"}, {"ts": "2026-10-03T00:00:00Z"},
        {"user_id": "u\x00"}, {"user_id": "u\n1"}, {"user_id": "u\x7f"}, {"user_id": "ü 1"},
        {"user_id": "u" * 256}, {"user_id": "u" * 257}, {"event_id": "e\t"},
        {"text": "a\x00b"}, {"text": "line\nbreak\x1b"},
    ])]
    raw = _events_frame(rows)
    assert_same(lambda s: validate_events(
        raw, DS, pl.Series(CATALOG), pl.Series(ACCEPTED, dtype=pl.String), CFG, s))


def test_an_empty_day_gets_the_same_outcomes() -> None:
    raw = concat_files([], EVENT_COLUMNS)
    assert_same(lambda s: validate_events(
        raw, DS, pl.Series(CATALOG), pl.Series([], dtype=pl.String), ValidateSettings(), s))


def test_catalog_rows_get_the_same_outcomes() -> None:
    ds = date(2024, 5, 1)
    base = {"item_id": "i", "title": "Tea", "description": "Green tea", "category": "food",
            "tags": "tea", "available": "true", "updated_at": "2024-04-30T12:00:00Z"}
    rows = [{**base, "item_id": f"i{k}", **change} for k, change in enumerate([
        {}, {"title": ""}, {"title": None}, {"updated_at": "2024-05-02T00:00:00Z"},
        {"available": "maybe"}, {"available": None}, {"updated_at": "soon"},
        {"updated_at": "2024-05-01T23:59:59Z"}, {"available": "0"},
        {"item_id": "i\x00"}, {"item_id": "i" * 257}, {"title": "T\x00"},
        {"description": "two\nlines\x07"}, {"tags": "a\x00b"}, {"category": "\x00"},
    ])]
    frame = pl.DataFrame(rows, schema={c: pl.String for c in ITEM_COLUMNS})
    raw = concat_files([conform(frame, ITEM_COLUMNS, ITEM_REQUIRED, "i.csv")], ITEM_COLUMNS)
    assert_same(lambda s: validate_items(raw, ds, s))


def test_every_expectation_of_the_suites_has_a_translation() -> None:
    """A new expectation type must be translated (or fail here), never skipped."""
    raw = _events_frame(clean_day())
    prepared = prepare_events(raw, pl.Series(CATALOG), pl.Series(ACCEPTED, dtype=pl.String))
    suite = event_expectations(DS, CFG)
    assert len(polars_suite.evaluate(prepared, suite)) == len(suite)
    assert {e.expectation_type for e in suite + item_expectations(DS)} <= {
        "expect_column_values_to_not_be_null", "expect_column_values_to_be_null",
        "expect_column_values_to_be_in_set", "expect_column_values_to_be_between",
        "expect_column_value_lengths_to_be_between", "expect_column_values_to_be_unique",
        "expect_column_values_to_not_match_regex"}


def test_an_untranslated_expectation_raises() -> None:
    import great_expectations.expectations as gxe

    frame = pl.DataFrame({"_row": np.arange(3), "x": [1, 2, 3]})
    with pytest.raises(UntranslatedExpectation, match="expect_column_median_to_be_between"):
        polars_suite.evaluate(frame, [gxe.ExpectColumnMedianToBeBetween(column="x",
                                                                        min_value=1)])


def test_compound_row_conditions_agree_with_gx() -> None:
    """``&``, ``|``, comparisons and nullity in row conditions, which the suites may use."""
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    frame = pl.DataFrame({
        "_row": np.arange(8, dtype=np.int64),
        "kind": ["a", "a", "b", "b", None, "a", "b", "a"],
        "x": [1.0, None, 3.0, -1.0, 5.0, 7.0, None, 2.0],
        "y": [0, 1, 2, 3, 4, None, 6, 7],
    })
    suite = [
        gxe.ExpectColumnValuesToNotBeNull(
            column="x", row_condition=(Column("kind") == "a") & (Column("y") >= 1),
            meta={"reason": "and"}),
        gxe.ExpectColumnValuesToBeBetween(
            column="x", min_value=0, row_condition=(Column("kind") != "a") | Column("y").is_null(),
            meta={"reason": "or"}),
        gxe.ExpectColumnValuesToBeBetween(column="y", max_value=5, strict_max=True, mostly=0.7,
                                          meta={"reason": "mostly"}),
    ]
    reference = GxSession("pandas").run("t", frame, suite)
    assert _comparable(polars_suite.evaluate(frame, suite)) == _comparable(reference)
