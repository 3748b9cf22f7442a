"""The three evaluators of the suites give the same verdicts and outcomes row for row: their
polars translation (the default), GX on pandas and GX on its Spark data source, on generated
days with hand-made bad rows; and the first two on every row-level case of the bad-input
corpus (GX on Spark costs minutes there and reads the same prepared frame)."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from pipelines.core import catalog as cat
from pipelines.core.contracts import EVENT_COLUMNS, EVENT_REQUIRED, ITEM_COLUMNS, ITEM_REQUIRED
from pipelines.core.settings import SparkSettings, ValidateSettings, replace
from pipelines.datasets.generate import GenerateSpec, generate
from pipelines.validate import quality
from pipelines.validate.gx_runner import ExpectationOutcome, GxSession
from pipelines.validate.polars_suite import PolarsSession
from pipelines.validate.rawfiles import MALFORMED
from pipelines.validate.rows import concat_files, conform, validate_events, validate_items
from tests.integration.test_validate_corpus import day1  # noqa: F401, F811 - the corpus workspace fixture

pytestmark = pytest.mark.slow

FILE_FORMAT_CASES = ("csv_", "jsonl_", "parquet_", "header_only", "marker_", "extra_column")
SPEC = GenerateSpec(n_users=60, n_items=40, n_days=3, start=date(2026, 10, 1),
                    events_per_day=300, malformed_share=0.2, seed=5)


@pytest.fixture(scope="module")
def spark():
    from pipelines.core.spark import spark_session

    with spark_session(SparkSettings(master="local[2]", shuffle_partitions=2)) as session:
        yield session


def _text(frame: pl.DataFrame, columns: dict, required: tuple, source: str) -> pl.DataFrame:
    as_text = frame.select(
        pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00") if frame.schema[c] == pl.Datetime(
            "us", "UTC") else pl.col(c).cast(pl.String) for c in frame.columns)
    return concat_files([conform(as_text, columns, required, source)], columns)


def _hand_made_rows(ds: date) -> pl.DataFrame:
    """Rows the generator does not make: blanks, unparseable text, a truncated line, offsets."""
    base = {"event_id": "h0", "user_id": "u00001", "item_id": "i00001", "event_type": "view",
            "ts": f"{ds}T10:00:00+02:00", "value": "3", "text": None, MALFORMED: None,
            "_source": "hand.jsonl"}
    rows = [
        base,
        {**base, "event_id": "h1", "user_id": "  "},
        {**base, "event_id": "h2", "ts": "not a time"},
        {**base, "event_id": "h3", "value": "many"},
        {**base, "event_id": "h4", "event_type": "rate", "value": None},
        {**base, "event_id": "h5", "ts": f"{ds - timedelta(days=3)}T00:00:00Z"},
        {**base, "event_id": None, "user_id": None, "item_id": None, "event_type": None,
         "ts": None, "value": None, MALFORMED: "truncated last line"},
        {**base, "event_id": "h0", "ts": f"{ds}T11:00:00Z"},
    ]
    return pl.DataFrame(rows, schema={**{c: pl.String for c in EVENT_COLUMNS},
                                      MALFORMED: pl.String, "_source": pl.String})


def _verdicts(session: GxSession, day, known: pl.Series, accepted: pl.Series,
              cfg: ValidateSettings):
    items, item_outcomes = validate_items(
        _text(day.items, ITEM_COLUMNS, ITEM_REQUIRED, "items.parquet"), day.ds, session)
    raw = pl.concat([_text(day.events, EVENT_COLUMNS, EVENT_REQUIRED, "events.parquet"),
                     _hand_made_rows(day.ds)])
    catalog = pl.concat([known, items.clean["item_id"]]).unique()
    events, event_outcomes = validate_events(raw, day.ds, catalog, accepted, cfg, session)
    return items, item_outcomes, events, event_outcomes


def _outcomes(outcomes: list[ExpectationOutcome]) -> list[tuple]:
    return [(o.reason, o.success, o.unexpected_count, o.rows.tolist(), o.details)
            for o in outcomes]


def test_polars_gx_and_spark_agree_row_by_row(spark) -> None:
    cfg = replace(ValidateSettings(), max_quarantine_share=1.0)
    known = pl.Series("item_id", [], pl.String)
    accepted = pl.Series("event_id", [], pl.String)
    compared = 0
    for day in generate(SPEC):
        default = _verdicts(PolarsSession(), day, known, accepted, cfg)
        for other in (GxSession("pandas"), GxSession("spark", spark=spark)):
            theirs = _verdicts(other, day, known, accepted, cfg)
            for left, right in ((default[0], theirs[0]), (default[2], theirs[2])):
                assert left.clean.equals(right.clean)
                assert left.quarantine.equals(right.quarantine)
                assert left.n_duplicates == right.n_duplicates
            for left, right in ((default[1], theirs[1]), (default[3], theirs[3])):
                assert _outcomes(left) == _outcomes(right), other.engine
                assert quality.dq_rows("x", left) == quality.dq_rows("x", right)
        events = default[2]
        assert events.quarantine.height > 0 and events.n_duplicates > 0
        compared += events.n_raw
        known = pl.concat([known, default[0].clean["item_id"]]).unique()
        accepted = pl.concat([accepted, events.clean["event_id"]])
    assert compared > 800


def test_polars_and_gx_agree_on_the_corpus(day1, tmp_path) -> None:  # noqa: F811
    """Every row-level case of the bad-input corpus gets the same verdicts and outcomes."""
    import shutil

    from jobs.tasks.validate import _read_raw
    from tests.integration.test_validate_corpus import CORPUS, Rows, _context, write

    compared = 0
    for case in CORPUS:
        # File-format cases differ only in reading the files, which both paths share.
        if not isinstance(case.expected, Rows) or case.name.startswith(FILE_FORMAT_CASES):
            continue
        root = tmp_path / case.name
        shutil.copytree(day1, root)
        write(root / "raw", case.files)
        ctx = _context(root, case.validate)
        items_raw = _read_raw(ctx, cat.RAW_ITEMS, ITEM_COLUMNS, ITEM_REQUIRED).frame
        events_raw = _read_raw(ctx, cat.RAW_EVENTS, EVENT_COLUMNS, EVENT_REQUIRED).frame
        prior = ctx.read_days(cat.CLEAN_ITEMS, ctx.lake.days(cat.CLEAN_ITEMS),
                              columns=["item_id"])["item_id"]
        accepted = ctx.read_days(cat.CLEAN_EVENTS, ctx.lake.days(cat.CLEAN_EVENTS),
                                 columns=["event_id"])["event_id"]
        verdicts = {}
        for name, session in (("polars", PolarsSession()), ("gx", GxSession("pandas"))):
            items, _ = validate_items(items_raw, ctx.ds, session)
            known = pl.concat([prior, items.clean["item_id"]]).unique()
            events, outcomes = validate_events(events_raw, ctx.ds, known, accepted,
                                               ctx.settings.validate, session)
            verdicts[name] = (items, events, _outcomes(outcomes))
        for left, right in zip(verdicts["polars"][:2], verdicts["gx"][:2], strict=True):
            assert left.clean.equals(right.clean), case.name
            assert left.quarantine.equals(right.quarantine), case.name
        assert verdicts["polars"][2] == verdicts["gx"][2], case.name
        compared += 1
    assert compared >= 20
