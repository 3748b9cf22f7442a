"""Property test: random corruptions of a clean partition never break the row accounting.

Hypothesis applies random corruptions (``tests.support.corrupt_days``) to random rows of a clean
30-row day, and the verdict of ``validate_events`` is checked against the contract and against a
small model of the rules written here in plain Python. Every row carries a tag at the start of
``text``, so each raw row can be followed to its verdict.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import polars as pl
from hypothesis import given, settings

from pipelines.core.contracts import EVENT_COLUMNS, EVENT_REQUIRED, EVENT_TYPES
from pipelines.validate.expectations import DUPLICATE, event_expectations
from pipelines.validate.rows import SOURCE, concat_files, conform, validate_events
from tests.support.corrupt_days import (
    ACCEPTED,
    CATALOG,
    CFG,
    DS,
    EARLIEST,
    END,
    TAG_LEN,
    Corruption,
    Day,
    Row,
    apply,
    clean_day,
    corruptions,
)

# --- a plain-Python model of the rules -----------------------------------------------------------

def _blank(v: str | None) -> str | None:
    return None if v is None or v.strip() == "" else v


def _parse_ts(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _parse_value(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def model_reasons(row: Row) -> set[str]:
    """The rules a row breaks on its own (not counting copies within the day)."""
    reasons = {f"missing_{c}" for c in EVENT_REQUIRED if _blank(row[c]) is None}
    event_type, ts_text, value_text = (_blank(row[c]) for c in ("event_type", "ts", "value"))
    ts = _parse_ts(ts_text) if ts_text is not None else None
    value = _parse_value(value_text) if value_text is not None else None
    if ts_text is not None and ts is None:
        reasons.add("unparseable_ts")
    if value_text is not None and value is None:
        reasons.add("unparseable_value")
    if event_type is not None and event_type not in EVENT_TYPES:
        reasons.add("unknown_event_type")
    if ts is not None and ts >= END:
        reasons.add("ts_in_future")
    if ts is not None and ts < EARLIEST:
        reasons.add("ts_too_late")
    if event_type == "rate" and value_text is None:
        reasons.add("missing_rating")
    if event_type == "rate" and value is not None and not CFG.rating_min <= value <= CFG.rating_max:
        reasons.add("rating_out_of_scale")
    if event_type == "view" and value is not None and value < 0:
        reasons.add("negative_dwell")
    item_id = _blank(row["item_id"])
    if item_id is not None and item_id not in CATALOG:
        reasons.add("unknown_item")
    if row["text"] is not None and len(row["text"]) > CFG.max_text_chars:
        reasons.add("text_too_long")
    if _blank(row["event_id"]) in ACCEPTED:
        reasons.add(DUPLICATE)
    return reasons


def model_verdicts(rows: list[Row]) -> dict[str, set[str]]:
    """Per row tag, the reasons it is quarantined under (empty: clean). Among rows breaking no
    rule, the earliest ``ts`` (then the first row) of an ``event_id`` wins; the rest are
    duplicates."""
    verdict = {r["text"][:TAG_LEN]: model_reasons(r) for r in rows}
    good = sorted((_parse_ts(r["ts"]), pos, r) for pos, r in enumerate(rows)
                  if not verdict[r["text"][:TAG_LEN]])
    seen: set[str] = set()
    for _, _, r in good:
        if r["event_id"] in seen:
            verdict[r["text"][:TAG_LEN]] = {DUPLICATE}
        seen.add(r["event_id"])
    return verdict


# --- the property ------------------------------------------------------------------------------

KNOWN_REASONS = {e.meta["reason"] for e in event_expectations(DS, CFG)}


@settings(max_examples=25, deadline=None)
@given(corruptions)
def test_random_corruptions_keep_the_accounting_and_the_contract(ops: list[Corruption]) -> None:
    day = Day(clean_day())
    for op in ops:
        apply(day, op)
    rows = day.rows
    frame = pl.DataFrame(rows, schema={c: pl.String for c in EVENT_COLUMNS})
    raw = concat_files([conform(frame, EVENT_COLUMNS, EVENT_REQUIRED, "prop.jsonl")],
                       EVENT_COLUMNS)
    verdict, outcomes = validate_events(raw, DS, pl.Series(CATALOG),
                                        pl.Series(ACCEPTED, dtype=pl.String), CFG)
    clean, quarantine = verdict.clean, verdict.quarantine

    # 1. Accounting: every raw row is clean, quarantined or a duplicate.
    assert verdict.n_raw == len(rows)
    assert verdict.n_raw == verdict.n_clean + verdict.n_quarantined + verdict.n_duplicates
    assert quarantine.height == verdict.n_quarantined + verdict.n_duplicates

    # 2. Every raw row lands exactly once: the tags, and the (non-blank) event ids.
    tags = [r["text"][:TAG_LEN] for r in rows]
    landed = [t[:TAG_LEN] for t in [*clean["text"], *quarantine["text"]]]
    assert sorted(landed) == sorted(tags)
    raw_ids = Counter(i for i in (_blank(r["event_id"]) for r in rows) if i is not None)
    out_ids = Counter(i for i in [*clean["event_id"], *quarantine["event_id"]] if i is not None)
    assert out_ids == raw_ids

    # 3. Clean rows keep the contract.
    assert clean.schema == pl.Schema(EVENT_COLUMNS)
    assert clean["event_id"].n_unique() == clean.height
    assert clean.select(pl.col(c).null_count() for c in EVENT_REQUIRED).row(0) == (0,) * 5
    assert set(clean["event_type"]) <= set(EVENT_TYPES)
    assert set(clean["item_id"]) <= set(CATALOG)
    assert not set(clean["event_id"]) & set(ACCEPTED)
    if clean.height:
        assert clean["ts"].min() >= EARLIEST
        assert clean["ts"].max() < END
    rates = clean.filter(pl.col("event_type") == "rate")["value"]
    assert rates.null_count() == 0
    assert rates.is_between(CFG.rating_min, CFG.rating_max).all()
    assert (clean.filter(pl.col("event_type") == "view")["value"].drop_nulls() >= 0).all()
    assert (clean["text"].str.len_chars() <= CFG.max_text_chars).all()
    assert clean["ts"].is_sorted()

    # 4. A row no corruption touched stays clean, unless it is a later copy of an event whose
    #    earliest good delivery is clean.
    got = {t[:TAG_LEN]: set() for t in clean["text"]}
    got |= {t[:TAG_LEN]: set(r.split(",")) for t, r in quarantine.select("text", "reasons").rows()}
    winners = dict(clean.select("event_id", "ts").rows())
    ts_by_tag = {r["text"][:TAG_LEN]: _parse_ts(r["ts"]) for r in rows}
    id_by_tag = {r["text"][:TAG_LEN]: r["event_id"] for r in rows}
    for tag in set(tags) - day.corrupted:
        if got[tag]:
            assert got[tag] == {DUPLICATE}, (tag, got[tag])
            assert winners[id_by_tag[tag]] <= ts_by_tag[tag]

    # 5. Each row's reasons are exactly what the rules say, and only known reasons are used.
    assert set().union(*got.values()) <= KNOWN_REASONS
    assert got == model_verdicts(rows)
    assert all(s.endswith("prop.jsonl") for s in quarantine[SOURCE])

    # 6. The expectation results count the same rows.
    counts = {o.reason: o.unexpected_count for o in outcomes}
    for reason in KNOWN_REASONS - {DUPLICATE, "event_id_unique_in_partition"}:
        assert counts[reason] == sum(reason in r for r in got.values()), reason
