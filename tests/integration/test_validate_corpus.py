"""A corpus of bad raw inputs, each written as real files and run through the validate task.

Every case lands files for 2026-10-02 on top of a clean, already validated 2026-10-01 (five
catalog items, four accepted events) and states its verdict: either the row accounting (clean,
quarantined, duplicates and the exact reasons of every quarantined row) or a file-level failure
(the error type and what its message must name).
"""

from __future__ import annotations

import io
import json
import shutil
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from jobs.context import RunContext
from jobs.tasks import run_task
from pipelines.core import catalog as cat
from pipelines.core.errors import (
    DataQualityError,
    MissingPartition,
    RawFileError,
    UpstreamMissing,
)
from pipelines.core.settings import replace
from pipelines.core.storage import partition
from pipelines.validate.expectations import DUPLICATE, event_expectations, item_expectations
from tests.support.workspace import make_settings

D1 = date(2026, 10, 1)
D2 = date(2026, 10, 2)
RUN = "corpus"
UNIQUE = "event_id_unique_in_partition"
EVENT_HEADER = ("event_id", "user_id", "item_id", "event_type", "ts", "value", "text")
ITEM_HEADER = ("item_id", "title", "description", "category", "tags", "available", "updated_at")
MALFORMED_ROW = ("malformed_line,missing_event_id,missing_event_type,missing_item_id,missing_ts,"
                 "missing_user_id")


# --- building raw bytes ------------------------------------------------------------------------

def ev(event_id: str | None, **over: str | None) -> dict[str, str | None]:
    """One event row as text: a click on i1 at 10:00 on D2 unless overridden."""
    return {"event_id": event_id, "user_id": "u1", "item_id": "i1", "event_type": "click",
            "ts": "2026-10-02T10:00:00Z", "value": None, "text": None, **over}


def item(item_id: str, **over: str | None) -> dict[str, str | None]:
    return {"item_id": item_id, "title": f"Title {item_id}", "description": "d",
            "category": "c", "tags": "a|b", "available": "true",
            "updated_at": "2026-10-02T08:00:00Z", **over}


def csv(rows: list[dict], header: tuple[str, ...] = EVENT_HEADER) -> bytes:
    """CSV text exactly as written here: None is an empty field, nothing is quoted."""
    lines = [",".join(header)]
    lines += [",".join("" if r.get(c) is None else str(r[c]) for c in header) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def parquet(df: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.write_parquet(buf)
    return buf.getvalue()


def E(name: str) -> str:  # noqa: N802 - reads as a path constructor
    return f"events/{partition(D2)}/{name}"


def I(name: str) -> str:  # noqa: E743, N802
    return f"items/{partition(D2)}/{name}"


# Good rows every row case mixes with its bad ones: they keep each typed column castable in the
# file, so one bad value is a row verdict rather than a file-level one.
GOOD = [
    ev("g1"),
    ev("g2", event_type="view", value="12.5"),
    ev("g3", event_type="rate", value="4", item_id="i2"),
]


# --- expected verdicts ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Rows:
    """A row verdict. ``reasons``: event_id of every quarantined row -> its reasons."""

    clean: int
    quarantined: int
    duplicates: int = 0
    reasons: Mapping[str | None, str] = field(default_factory=dict)
    redelivered: int = 0        # rows whose event_id was accepted on an earlier day
    repeated: int = 0           # rows whose event_id occurs more than once in the partition
    items: tuple[int, int] = (0, 0)          # catalog rows: clean, quarantined
    item_reasons: Mapping[str | None, str] = field(default_factory=dict)
    extra_columns: tuple[str, ...] = ()
    texts: Mapping[str, str | None] = field(default_factory=dict)  # clean event_id -> text


@dataclass(frozen=True)
class Fails:
    error: type[Exception]
    contains: tuple[str, ...]


ROW_CASE = {"max_quarantine_share": 1.0}


@dataclass(frozen=True)
class Case:
    name: str
    files: Mapping[str, bytes]
    expected: Rows | Fails
    validate: Mapping[str, object] = field(default_factory=lambda: dict(ROW_CASE))


def row_case(name: str, row: dict, reason: str) -> Case:
    """The three good rows plus one bad row in one CSV file: 3 clean, 1 quarantined."""
    return Case(name, {E("part-0.csv"): csv([*GOOD, row])},
                Rows(3, 1, reasons={row["event_id"]: reason}))


SHARE_FILES = {E("part-0.csv"): csv([
    *GOOD, ev("g4"), ev("g5"), ev("g6"), ev("g7"), ev("g8"),
    ev("s1", event_type="like"), ev("s2", item_id="i99"),
])}
SHARE_REASONS = {"s1": "unknown_event_type", "s2": "unknown_item"}

QUOTED_NEWLINE = (
    "event_id,user_id,item_id,event_type,ts,value,text\n"
    "g1,u1,i1,click,2026-10-02T10:00:00Z,,\n"
    'r1,u2,i3,review,2026-10-02T11:00:00Z,,"line one\nline two, with ""quotes"""\n'
)

CORPUS: list[Case] = [
    # --- one defect per row ---------------------------------------------------------------
    row_case("missing_user_id", ev("x1", user_id=None), "missing_user_id"),
    Case("blank_event_id", {E("part-0.csv"): csv([*GOOD, ev("   ", user_id="u9")])},
         Rows(3, 1, reasons={None: "missing_event_id"})),
    row_case("unknown_event_type", ev("x1", event_type="like"), "unknown_event_type"),
    row_case("ts_in_future", ev("x1", ts="2026-10-03T00:00:00Z"), "ts_in_future"),
    row_case("ts_too_late", ev("x1", ts="2026-09-29T23:59:59Z"), "ts_too_late"),
    row_case("ts_unparseable_in_one_row", ev("x1", ts="yesterday"), "unparseable_ts"),
    row_case("rating_out_of_scale", ev("x1", event_type="rate", value="6"),
             "rating_out_of_scale"),
    row_case("rating_missing_on_rate", ev("x1", event_type="rate"), "missing_rating"),
    row_case("negative_dwell", ev("x1", event_type="view", value="-1"), "negative_dwell"),
    row_case("value_unparseable", ev("x1", event_type="view", value="lots"),
             "unparseable_value"),
    row_case("unknown_item", ev("x1", item_id="i99"), "unknown_item"),
    row_case("text_too_long", ev("x1", event_type="review", text="w" * 10_001), "text_too_long"),
    Case("several_defects_on_one_row",
         {E("part-0.csv"): csv([*GOOD, ev("x1", user_id="", event_type="rate", value="9",
                                           item_id="i99", ts="2026-10-03T01:00:00Z")])},
         Rows(3, 1, reasons={"x1": "missing_user_id,rating_out_of_scale,ts_in_future,"
                                   "unknown_item"})),
    # --- catalog as of ds -----------------------------------------------------------------------
    Case("item_enters_catalog_today",
         {I("items.csv"): csv([item("i6")], ITEM_HEADER),
          E("part-0.csv"): csv([*GOOD, ev("n1", item_id="i6")])},
         Rows(4, 0, items=(1, 0))),
    # --- duplicates -------------------------------------------------------------------------------
    Case("duplicate_in_partition_first_wins",
         {E("part-0.csv"): csv([*GOOD, ev("g1", user_id="u-second", ts="2026-10-02T12:00:00Z")])},
         Rows(3, 0, 1, reasons={"g1": DUPLICATE}, repeated=2)),
    Case("duplicate_across_files_and_formats",
         {E("a.csv"): csv(GOOD), E("b.jsonl"): jsonl([ev("g2", event_type="view", value="3"),
                                                     ev("n1")])},
         Rows(4, 0, 1, reasons={"g2": DUPLICATE}, repeated=2)),
    Case("redelivery_of_accepted_event",
         {E("part-0.csv"): csv([*GOOD, ev("d1-1")])},
         Rows(3, 0, 1, reasons={"d1-1": DUPLICATE}, redelivered=1)),
    Case("redelivery_with_another_defect_is_quarantined",
         {E("part-0.csv"): csv([*GOOD, ev("d1-2", user_id="")])},
         Rows(3, 1, 0, reasons={"d1-2": f"{DUPLICATE},missing_user_id"}, redelivered=1)),
    # --- file formats that are fine ---------------------------------------------------------------
    Case("csv_with_utf8_bom", {E("part-0.csv"): b"\xef\xbb\xbf" + csv(GOOD)}, Rows(3, 0)),
    Case("csv_with_crlf_line_ends",
         {E("part-0.csv"): csv(GOOD).replace(b"\n", b"\r\n")},
         Rows(3, 0, texts={"g1": None})),
    Case("csv_quoted_newline_in_text", {E("part-0.csv"): QUOTED_NEWLINE.encode()},
         Rows(2, 0, texts={"r1": 'line one\nline two, with "quotes"', "g1": None})),
    Case("csv_header_only", {E("part-0.csv"): csv([])}, Rows(0, 0)),
    Case("csv_zero_bytes", {E("part-0.csv"): b""}, Rows(0, 0)),
    Case("jsonl_zero_bytes", {E("part-0.jsonl"): b"", I("items.jsonl"): b"\n"}, Rows(0, 0)),
    Case("header_only_beside_data",
         {E("a.csv"): csv(GOOD), E("b.csv"): csv([]), E("c.jsonl"): jsonl([ev("n1")])},
         Rows(4, 0)),
    Case("marker_and_unknown_files_ignored",
         {E("part-0.csv"): csv(GOOD), E("_SUCCESS"): b"", E(".part-0.csv.crc"): b"\x00\x01",
          E("notes.txt"): b"not data"},
         Rows(3, 0)),
    Case("jsonl_with_json_typed_values",
         {E("part-0.jsonl"): b'{"event_id": "j1", "user_id": "u1", "item_id": "i1", '
                             b'"event_type": "rate", "ts": "2026-10-02T10:00:00+02:00", '
                             b'"value": 5, "text": null}\n'},
         Rows(1, 0)),
    Case("jsonl_truncated_last_line",
         {E("part-0.jsonl"): jsonl(GOOD) + b'{"event_id": "t1", "user_id": "u1", "item_'},
         Rows(3, 1, reasons={None: MALFORMED_ROW})),
    Case("parquet_typed_columns_and_time_zone",
         {E("part-0.parquet"): parquet(pl.DataFrame({
             "event_id": ["p1", "p2"], "user_id": ["u1", "u2"], "item_id": ["i1", "i2"],
             "event_type": ["view", "rate"],
             # 01:30 in Paris is 23:30 UTC the day before: inside the lateness window.
             "ts": pl.Series([datetime(2026, 10, 2, 1, 30), datetime(2026, 10, 2, 9)])
                   .dt.replace_time_zone("Europe/Paris"),
             "value": [3.5, 2.0], "text": pl.Series([None, None], dtype=pl.String),
         }))},
         Rows(2, 0)),
    Case("extra_column_reported_and_ignored",
         {E("part-0.csv"): csv([{**r, "channel": "web"} for r in GOOD],
                               (*EVENT_HEADER, "channel"))},
         Rows(3, 0, extra_columns=("channel",))),
    # --- catalog rows ---------------------------------------------------------------------------
    Case("item_blank_title",
         {I("items.csv"): csv([item("i6"), item("i7", title="  ")], ITEM_HEADER),
          E("part-0.csv"): csv([*GOOD, ev("n6", item_id="i6"), ev("n7", item_id="i7")])},
         Rows(4, 1, reasons={"n7": "unknown_item"}, items=(1, 1),
              item_reasons={"i7": "missing_title"})),
    Case("item_updated_at_unparseable",
         {I("items.jsonl"): jsonl([item("i6"), item("i1", updated_at="last tuesday")]),
          E("part-0.csv"): csv([*GOOD, ev("n6", item_id="i6")])},
         # i1's bad update is quarantined; i1 stays in the catalog from 2026-10-01.
         Rows(4, 0, items=(1, 1), item_reasons={"i1": "unparseable_updated_at"})),
    Case("item_updated_at_in_future",
         {I("items.csv"): csv([item("i6"), item("i8", updated_at="2026-10-03T00:00:00Z")],
                              ITEM_HEADER),
          E("part-0.csv"): csv([*GOOD, ev("n8", item_id="i8")])},
         Rows(3, 1, reasons={"n8": "unknown_item"}, items=(1, 1),
              item_reasons={"i8": "updated_at_in_future"})),
    # --- day-level rules --------------------------------------------------------------------------
    Case("quarantine_share_over_limit", SHARE_FILES,
         Fails(DataQualityError, ("quarantine_share", '"share": 0.2', '"raw": 10',
                                  '"limit": 0.05', "accept_anomalies")),
         validate={}),
    Case("quarantine_share_over_limit_accepted", SHARE_FILES,
         Rows(8, 2, reasons=SHARE_REASONS), validate={"accept_anomalies": True}),
    # --- file-level failures ---------------------------------------------------------------------
    Case("jsonl_broken_line_in_the_middle",
         {E("broken.jsonl"): jsonl(GOOD[:1]) + b'{"event_id": "b1", "user_\n' + jsonl(GOOD[1:])},
         Fails(RawFileError, ("broken.jsonl", "line 2", "not valid JSON"))),
    Case("jsonl_line_not_an_object",
         {E("list.jsonl"): jsonl(GOOD[:1]) + b'["b1", "u1"]\n'},
         Fails(RawFileError, ("list.jsonl", "line 2", "not a JSON object"))),
    Case("csv_not_utf8",
         {E("latin.csv"): csv(GOOD).replace(b"u1", "café".encode("latin-1"))},
         Fails(RawFileError, ("latin.csv", "not UTF-8"))),
    Case("csv_missing_required_column",
         {E("noitem.csv"): csv(GOOD, tuple(c for c in EVENT_HEADER if c != "item_id"))},
         Fails(RawFileError, ("noitem.csv", "item_id", "missing required column"))),
    Case("items_missing_required_column",
         {I("items.csv"): csv([item("i6")], ITEM_HEADER[:-1]), E("part-0.csv"): csv(GOOD)},
         Fails(RawFileError, ("items.csv", "updated_at", "missing required column"))),
    Case("ts_all_uncastable",
         {E("garbage.csv"): csv([{**r, "ts": "garbage"} for r in GOOD])},
         Fails(RawFileError, ("garbage.csv", "column ts", "garbage"))),
    Case("item_available_all_uncastable",
         {I("items.csv"): csv([item("i6", available="maybe")], ITEM_HEADER),
          E("part-0.csv"): csv(GOOD)},
         Fails(RawFileError, ("items.csv", "column available"))),
    Case("mixed_column_sets",
         {E("a.csv"): csv(GOOD), E("b.csv"): csv([ev("n1")], EVENT_HEADER[:-1])},
         Fails(RawFileError, ("mixed schemas", "a.csv", "b.csv", "text"))),
    Case("parquet_types_differ",
         {E("a.parquet"): parquet(pl.DataFrame(
             {**{c: [v] for c, v in ev("p1").items() if c != "value"}, "value": [1.5]})),
          E("b.parquet"): parquet(pl.DataFrame(
             {**{c: [v] for c, v in ev("p2").items() if c != "value"}, "value": ["1.5"]}))},
         Fails(RawFileError, ("mixed schemas", "column value", "a.parquet", "b.parquet",
                              "Float64", "String"))),
    Case("parquet_nested_column",
         {E("nested.parquet"): parquet(pl.DataFrame({
             **{c: [v] for c, v in ev("p1").items() if c != "text"}, "text": [["a", "b"]]}))},
         Fails(RawFileError, ("nested.parquet", "column text", "List"))),
    Case("earlier_day_not_validated",
         # 2026-09-30 landed after 2026-10-01 was validated: the catalog and the duplicate
         # check of 2026-10-02 would be incomplete.
         {E("part-0.csv"): csv(GOOD), "events/ds=2026-09-30/late.csv": csv([ev("o1")])},
         Fails(UpstreamMissing, ("not validated", "2026-09-30"))),
    Case("events_partition_missing",
         {I("items.csv"): csv([item("i6")], ITEM_HEADER)},
         Fails(MissingPartition, ("has not landed", str(D2)))),
    # --- blank fields and empty files ----------------------------------------------------------
    Case("csv_quote_all_null_value",
         # Python's csv module (QUOTE_ALL) and pandas' to_csv(quoting=QUOTE_ALL) write a missing
         # value as "": a click with no value is not an unparseable number.
         {E("part-0.csv"): (
             b'"event_id","user_id","item_id","event_type","ts","value","text"\n'
             b'"q1","u1","i1","click","2026-10-02T10:00:00Z","",""\n'
             b'"q2","u1","i1","view","2026-10-02T10:00:00Z","4",""\n')},
         Rows(2, 0, texts={"q1": None, "q2": None})),
    Case("jsonl_value_all_blank",
         # The same in JSON lines; with every value blank the file is not "uncastable" either.
         {E("part-0.jsonl"): jsonl([{**r, "value": ""} for r in (ev("q1"), ev("q2"))])},
         Rows(2, 0)),
    Case("blank_rating_is_a_missing_rating",
         {E("part-0.jsonl"): jsonl([*GOOD, ev("x1", event_type="rate", value=" ")])},
         Rows(3, 1, reasons={"x1": "missing_rating"})),
    Case("jsonl_empty_file_beside_csv",
         # README: "header-only and empty files are accepted", beside other files too.
         {E("a.csv"): csv(GOOD), E("b.jsonl"): b""},
         Rows(3, 0)),
    Case("csv_zero_bytes_beside_csv",
         {E("a.csv"): csv(GOOD), E("b.csv"): b""},
         Rows(3, 0)),
]


# --- the shared first day ----------------------------------------------------------------

@pytest.fixture(scope="module")
def day1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with 2026-10-01 landed and validated: items i1..i5, events d1-1..d1-4."""
    root = tmp_path_factory.mktemp("day1")
    items = [item(f"i{n}", updated_at="2026-09-30T12:00:00Z") for n in range(1, 6)]
    events = pl.DataFrame({
        "event_id": [f"d1-{n}" for n in range(1, 5)],
        "user_id": ["u1", "u2", "u3", "u1"],
        "item_id": ["i1", "i2", "i3", "i4"],
        "event_type": ["view", "click", "rate", "purchase"],
        "ts": [datetime(2026, 10, 1, h, tzinfo=UTC) for h in (8, 9, 10, 11)],
        "value": [30.0, None, 5.0, None],
        "text": pl.Series([None] * 4, dtype=pl.String),
    })
    write(root / "raw", {f"items/{partition(D1)}/items.csv": csv(items, ITEM_HEADER),
                         f"events/{partition(D1)}/part-0.parquet": parquet(events)})
    summary = run_task("validate", RunContext(make_settings(root), D1, "day1"))
    assert (summary["events"]["clean"], summary["items"]["clean"]) == (4, 5)
    return root


def write(raw_root: Path, files: Mapping[str, bytes]) -> None:
    for rel, data in files.items():
        path = raw_root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _context(root: Path, overrides: Mapping[str, object]) -> RunContext:
    settings = make_settings(root)
    settings = replace(settings, validate=replace(settings.validate, **overrides))
    return RunContext(settings, D2, RUN)


def test_corpus_is_large_and_names_are_distinct() -> None:
    names = [c.name for c in CORPUS]
    assert len(set(names)) == len(names)
    assert len(CORPUS) >= 24
    assert len({json.dumps(sorted((k, v.hex()) for k, v in c.files.items())) for c in CORPUS
                if c.name != "quarantine_share_over_limit_accepted"}) == len(CORPUS) - 1


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_corpus(case: Case, day1: Path, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(day1, root)
    write(root / "raw", case.files)
    ctx = _context(root, case.validate)
    if isinstance(case.expected, Fails):
        _assert_fails(ctx, case.expected)
    else:
        _assert_rows(ctx, case.expected)


def _assert_fails(ctx: RunContext, expected: Fails) -> None:
    with pytest.raises(expected.error) as err:
        run_task("validate", ctx)
    message = str(err.value)
    for needle in expected.contains:
        assert needle in message, f"{needle!r} not in {message!r}"
    # Nothing downstream may run on the day: no clean partition of either kind.
    assert not ctx.lake.exists(cat.CLEAN_EVENTS, ds=ctx.ds)
    assert not ctx.lake.exists(cat.CLEAN_ITEMS, ds=ctx.ds)
    if expected.error is DataQualityError:
        # The verdicts were still recorded, and the summary says the day was rejected.
        summary = ctx.lake.read_dict(cat.VALIDATE_SUMMARY, ds=ctx.ds)
        assert summary["rejected"] is True
        ev_ = summary["events"]
        assert ev_["raw"] == ev_["clean"] + ev_["quarantined"] + ev_["duplicates"]
        dq = _dq(ctx)
        assert dq[("events", "quarantine_share")] == (False, ev_["quarantined"])
    else:
        # A file-level failure happens before any verdict is written.
        assert not ctx.lake.exists(cat.VALIDATE_SUMMARY, ds=ctx.ds)
        assert not ctx.lake.exists(cat.QUARANTINE_EVENTS, ds=ctx.ds)


def _assert_rows(ctx: RunContext, expected: Rows) -> None:
    returned = run_task("validate", ctx)
    summary = ctx.lake.read_dict(cat.VALIDATE_SUMMARY, ds=ctx.ds)
    assert summary == json.loads(json.dumps(returned))
    assert summary["rejected"] is False
    events, items = summary["events"], summary["items"]

    # Accounting: every raw row is clean, quarantined or a duplicate, exactly once.
    assert (events["clean"], events["quarantined"], events["duplicates"]) == (
        expected.clean, expected.quarantined, expected.duplicates)
    assert events["raw"] == events["clean"] + events["quarantined"] + events["duplicates"]
    assert (items["clean"], items["quarantined"]) == expected.items
    assert items["raw"] == items["clean"] + items["quarantined"]
    assert events["extra_columns"] == list(expected.extra_columns)

    quarantine = ctx.lake.read(cat.QUARANTINE_EVENTS, ds=ctx.ds)
    got = quarantine.select("event_id", "reasons").rows()
    assert len(got) == len(expected.reasons) == expected.quarantined + expected.duplicates
    assert dict(got) == dict(expected.reasons)
    reason_counts = Counter(r for _, reasons in got for r in reasons.split(","))
    assert events["reasons"] == dict(reason_counts)

    item_quarantine = ctx.lake.read(cat.QUARANTINE_ITEMS, ds=ctx.ds)
    assert dict(item_quarantine.select("item_id", "reasons").rows()) == dict(
        expected.item_reasons)

    clean = ctx.lake.read(cat.CLEAN_EVENTS, ds=ctx.ds)
    assert clean.height == expected.clean
    assert clean["event_id"].n_unique() == clean.height
    # A quarantined event is not also clean (a duplicate's first delivery is).
    rejected = {k for k, v in expected.reasons.items() if k is not None and v != DUPLICATE}
    assert not set(clean["event_id"]) & rejected
    texts = dict(clean.select("event_id", "text").rows())
    for event_id, text in expected.texts.items():
        assert texts[event_id] == text
    assert ctx.lake.read(cat.CLEAN_ITEMS, ds=ctx.ds).height == (
        expected.items[0])

    _assert_dq(ctx, quarantine, item_quarantine, expected, events)


def _dq(ctx: RunContext) -> dict[tuple[str, str], tuple[bool, int]]:
    rows = ctx.warehouse().query(
        "select dataset, expectation, success, unexpected_count from recs.dq_results "
        "where run_id = ? and ds = ?", [RUN, ctx.ds]).rows()
    keys = [(d, e) for d, e, _, _ in rows]
    assert len(keys) == len(set(keys)), "one dq_results row per expectation"
    return {(d, e): (s, n) for d, e, s, n in rows}


def _containing(quarantine: pl.DataFrame, reason: str) -> int:
    return sum(reason in r.split(",") for r in quarantine["reasons"])


def _assert_dq(ctx: RunContext, quarantine: pl.DataFrame, item_quarantine: pl.DataFrame,
               expected: Rows, events: dict) -> None:
    dq = _dq(ctx)
    cfg = ctx.settings.validate
    event_reasons = [e.meta["reason"] for e in event_expectations(ctx.ds, cfg)]
    item_reasons = [e.meta["reason"] for e in item_expectations(ctx.ds)]
    assert set(dq) == ({("events", r) for r in event_reasons}
                       | {("items", r) for r in item_reasons}
                       | {("events", "quarantine_share"), ("events", "volume_vs_trailing_median")})
    for reason in event_reasons:
        if reason == DUPLICATE:
            want = expected.redelivered
        elif reason == UNIQUE:
            want = expected.repeated
        else:
            want = _containing(quarantine, reason)
        assert dq[("events", reason)] == (want == 0, want), reason
    for reason in item_reasons:
        want = _containing(item_quarantine, reason)
        assert dq[("items", reason)] == (want == 0, want), reason
    share = events["quarantined"] / events["raw"] if events["raw"] else 0.0
    assert dq[("events", "quarantine_share")] == (share <= cfg.max_quarantine_share,
                                                   events["quarantined"])


def test_rejected_rerun_removes_an_earlier_clean_partition(day1: Path, tmp_path: Path) -> None:
    """A day accepted once (accept_anomalies) and rerun without it leaves no clean partition."""
    root = tmp_path / "ws"
    shutil.copytree(day1, root)
    write(root / "raw", SHARE_FILES)
    run_task("validate", _context(root, {"accept_anomalies": True}))
    ctx = _context(root, {})
    assert ctx.lake.exists(cat.CLEAN_EVENTS, ds=ctx.ds)
    with pytest.raises(DataQualityError, match="quarantine_share"):
        run_task("validate", ctx)
    assert not ctx.lake.exists(cat.CLEAN_EVENTS, ds=ctx.ds)
    assert not ctx.lake.exists(cat.CLEAN_ITEMS, ds=ctx.ds)


def test_data_docs_can_be_turned_off_without_changing_the_verdicts(day1: Path,
                                                                   tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(day1, root)
    write(root / "raw", {E("part-0.csv"): csv(GOOD)})
    with_docs = run_task("validate", _context(root, {}))
    ctx = _context(root, {"data_docs": False})
    clean = ctx.lake.read(cat.CLEAN_EVENTS, ds=ctx.ds)
    assert ctx.lake.exists(cat.DATA_DOCS, ds=ctx.ds)
    without = run_task("validate", ctx)
    assert without["data_docs"] is None
    # A rerun without docs removes the earlier site: it would describe another run.
    assert not ctx.lake.exists(cat.DATA_DOCS, ds=ctx.ds)
    assert without["events"] == with_docs["events"]
    assert ctx.lake.read(cat.CLEAN_EVENTS, ds=ctx.ds).equals(clean)
