"""A clean 30-row day of raw events and random corruptions of it (hypothesis strategies), for the
property tests of validation: keys nulled or blanked, event types replaced, timestamps moved or
garbled, values made text or taken off the scale, rows copied or dropped, items and ids
replaced, texts lengthened. Every row carries a tag at the start of ``text``, so each raw row
can be followed to its verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from hypothesis import strategies as st

from pipelines.core.contracts import EVENT_REQUIRED, EVENT_TYPES
from pipelines.core.settings import ValidateSettings

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
