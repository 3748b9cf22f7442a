"""Property test: random corruptions of a clean partition never break the row accounting.

A clean 30-row day is built here; hypothesis applies random corruptions to random rows (keys
nulled or blanked, event types replaced, timestamps moved or garbled, values made text or taken
off the scale, rows copied or dropped, items and ids replaced, texts lengthened) and the verdict
of ``validate_events`` is checked against the contract and against a small model of the rules
written here in plain Python. Every row carries a tag at the start of ``text``, so each raw row
can be followed to its verdict.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.core.contracts import EVENT_COLUMNS, EVENT_REQUIRED, EVENT_TYPES
from pipelines.core.settings import ValidateSettings
from pipelines.validate.expectations import DUPLICATE, event_expectations
from pipelines.validate.rows import SOURCE, concat_files, conform, validate_events

DS = date(2026, 10, 2)
START = datetime(2026, 10, 2, tzinfo=UTC)
END = START + timedelta(days=1)
CFG = ValidateSettings(max_text_chars=40)
EARLIEST = START - timedelta(hours=CFG.lateness_hours)
CATALOG = [f"i{n}" for n in range(10)]
ACCEPTED = ["old-1", "old-2"]
N_ROWS = 30
TAG_LEN = 4  # "t012": the first characters of ``text`` name the raw row

Row = dict[str, str | None]


def _tag(k: int) -> str:
    return f"t{k:03d}"


def clean_day() -> list[Row]:
    """30 good rows: every event type, values where the type takes them, a tag in ``text``."""
    rows = []
    for k in range(N_ROWS):
        event_type = EVENT_TYPES[k % len(EVENT_TYPES)]
        value = {"view": "12.5", "rate": str(1 + k % 5)}.get(event_type)
        rows.append({
            "event_id": f"e{k:02d}", "user_id": f"u{k % 7}", "item_id": CATALOG[k % 10],
            "event_type": event_type, "ts": f"2026-10-02T{k % 24:02d}:{(7 * k) % 60:02d}:00Z",
            "value": value, "text": _tag(k) + (" a fine review" if event_type == "review" else ""),
        })
    return rows


# --- corruptions ----------------------------------------------------------------------------------

BLANKS = ("", " ", "\t")
BAD_TYPES = ("like", "VIEW", "view ", "purchased", "rating")
GARBAGE_TS = ("garbage", "10/02/2026 10:00", "2026-13-40T00:00:00Z", "yesterday", "1759392000")
IN_SCALE = ("1", "5", "3.5", " 4 ")
OFF_SCALE = ("0.5", "5.0001", "9", "-3", "0")
TEXT_VALUES = ("abc", "4,5", "n/a", "five")
OFFSETS = ("Z", "+00:00", "+02:00", "-03:30", "+05:45", "")


@dataclass(frozen=True)
class Corruption:
    kind: str
    at: int          # row position, taken modulo the current number of rows
    column: str      # for key corruptions
    pick: int        # chooses among a kind's alternatives
    minutes: int     # for timestamps: minutes from the start of the day


KINDS = ("null_key", "blank_key", "event_type", "to_rate", "ts_shift", "ts_garbage",
         "value_text", "value_off_scale", "value_in_scale", "value_null", "value_blank",
         "duplicate", "drop",
         "unknown_item", "new_id", "redeliver", "long_text")

# Minutes from the start of DS: anywhere from well before the lateness window to well after
# the day, or close to one of the window's edges (the lateness limit, the day's start and end).
EDGES = (-int(CFG.lateness_hours * 60), 0, 24 * 60)
MINUTES = st.one_of(
    st.integers(-4 * 24 * 60, 2 * 24 * 60),
    st.builds(int.__add__, st.sampled_from(EDGES), st.integers(-3, 3)),
)

corruptions = st.lists(
    st.builds(Corruption, kind=st.sampled_from(KINDS), at=st.integers(0, 10_000),
              column=st.sampled_from(EVENT_REQUIRED), pick=st.integers(0, 100),
              minutes=MINUTES),
    max_size=15,
)


def _ts_text(minutes: int, pick: int) -> str:
    """A timestamp ``minutes`` after the start of ``DS`` (UTC), written with some offset."""
    offset = OFFSETS[pick % len(OFFSETS)]
    instant = START + timedelta(minutes=minutes)
    if offset in ("", "Z"):
        sep = " " if pick % 2 else "T"
        return instant.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + offset
    sign = 1 if offset[0] == "+" else -1
    hours, mins = int(offset[1:3]), int(offset[4:6])
    local = instant + sign * timedelta(hours=hours, minutes=mins)
    return local.strftime("%Y-%m-%dT%H:%M:%S") + offset


@dataclass
class Day:
    rows: list[Row]
    corrupted: set[str] = field(default_factory=set)  # tags of rows a corruption touched
    next_tag: int = N_ROWS


def apply(day: Day, c: Corruption) -> None:
    i = c.at % len(day.rows)
    row = day.rows[i]

    def pick(options: tuple[str, ...]) -> str:
        return options[c.pick % len(options)]

    if c.kind == "drop":
        if len(day.rows) > 1:
            day.rows.pop(i)
        return
    if c.kind == "duplicate":
        # A re-sent copy: same event, its own tag, sometimes a different event time.
        copy = dict(row)
        copy["text"] = _tag(day.next_tag) + (row["text"] or "")[TAG_LEN:]
        if c.pick % 2:
            copy["ts"] = _ts_text(c.minutes % (24 * 60), c.pick)
        day.next_tag += 1
        day.rows.insert(min(len(day.rows), i + 1 + c.pick % 5), copy)
        day.corrupted.add(copy["text"][:TAG_LEN])
        return
    day.corrupted.add((row["text"] or "")[:TAG_LEN])
    if c.kind == "null_key":
        row[c.column] = None
    elif c.kind == "blank_key":
        row[c.column] = pick(BLANKS)
    elif c.kind == "event_type":
        row["event_type"] = pick(BAD_TYPES + EVENT_TYPES)
    elif c.kind == "to_rate":
        row["event_type"] = "rate"
    elif c.kind == "ts_shift":
        row["ts"] = _ts_text(c.minutes, c.pick)
    elif c.kind == "ts_garbage":
        row["ts"] = pick(GARBAGE_TS)
    elif c.kind == "value_text":
        row["value"] = pick(TEXT_VALUES)
    elif c.kind == "value_off_scale":
        row["value"] = pick(OFF_SCALE)
    elif c.kind == "value_in_scale":
        row["value"] = pick(IN_SCALE)
    elif c.kind == "value_null":
        row["value"] = None
    elif c.kind == "value_blank":
        row["value"] = pick(BLANKS)   # a blank field is a missing one, not an unparseable one
    elif c.kind == "unknown_item":
        row["item_id"] = pick(("i99", "I1", "item-1", "i1 "))
    elif c.kind == "new_id":
        row["event_id"] = f"e{c.pick % N_ROWS:02d}"   # may collide with another row's id
    elif c.kind == "redeliver":
        row["event_id"] = pick(tuple(ACCEPTED))
    elif c.kind == "long_text":
        row["text"] = (row["text"] or "")[:TAG_LEN] + "x" * (CFG.max_text_chars - 3)
    else:  # pragma: no cover - a kind without a branch is a bug in this test
        raise AssertionError(c.kind)


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
