"""The Amazon "Industrial & Scientific" set (LC-Rec format) as raw-input partitions, one per day.

``Scientific.item.json`` maps an item index to ``title, description, brand, categories``; the
catalog gets ``category`` from the category path (``a,b,c`` becomes ``a|b|c``, the catalog's
list separator) and ``tags`` from the brand.

``Scientific.inter.json`` maps a user index to the user's items in order, with no timestamps and
no ratings. Days are made up from that order, aligned at the end: each user's last interaction
falls on the last day, the one before on the day before, and so on. Holding out the last ``h``
days is then the usual leave-last-``h``-out protocol. Every interaction becomes a ``purchase``.
Cold items (a seeded share of the catalog) lose their events before a cut-off day, so a model
trained before it has never seen them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from pipelines.core.contracts import EVENT_COLUMNS, ITEM_COLUMNS, RawDay, empty_items

ITEMS_FILE = "Scientific.item.json"
INTERACTIONS_FILE = "Scientific.inter.json"

INTERACTIONS_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.String(), "item_id": pl.String(), "position": pl.Int64(), "length": pl.Int64(),
}
EVENT_HOUR = 12  # every event sits at noon UTC plus its user's offset
MAX_USER_OFFSET_S = 12 * 3600  # keeps noon + offset inside the day


def load_amazon_items(folder: str | Path) -> pl.DataFrame:
    """``item_id, title, description, category, tags`` in item-index order; ids are ``a<index>``."""
    path = Path(folder) / ITEMS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (expected the LC-Rec item file)")
    raw = json.loads(path.read_text(encoding="utf-8"))
    rows = []
    for key in sorted(raw, key=int):
        item = raw[key]
        categories = [c.strip() for c in (item.get("categories") or "").split(",") if c.strip()]
        rows.append({
            "item_id": f"a{key}",
            "title": (item.get("title") or "").strip() or None,
            "description": (item.get("description") or "").strip() or None,
            "category": "|".join(categories) or None,
            "tags": (item.get("brand") or "").strip() or None,
        })
    return pl.DataFrame(rows, schema={"item_id": pl.String, "title": pl.String,
                                      "description": pl.String, "category": pl.String,
                                      "tags": pl.String})


def _read_sequences(path: Path) -> dict[int, list[int]]:
    """``{user index: [item index, ...]}`` from the LC-Rec interaction file, checked."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (expected the LC-Rec interaction file)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected an object of user index -> item list, "
                         f"got {type(raw).__name__}")
    sequences = {}
    for key, items in raw.items():
        if not key.isdigit():
            raise ValueError(f"{path}: user key {key!r} is not a non-negative integer")
        # bool is an int subclass; true/false in the file is still malformed.
        if not isinstance(items, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in items):
            raise ValueError(f"{path}: user {key} must map to a list of non-negative "
                             "integer item indices")
        sequences[int(key)] = items
    return sequences


def load_amazon_interactions(folder: str | Path) -> pl.DataFrame:
    """``user_id, item_id, position, length`` in user-index then sequence order; ids are
    ``u<index>`` and ``a<index>``, ``position`` is 0-based and ``length`` the user's count."""
    sequences = _read_sequences(Path(folder) / INTERACTIONS_FILE)
    users = sorted(sequences)
    return (
        pl.DataFrame({"user": users, "item": [sequences[u] for u in users]},
                     schema={"user": pl.Int64, "item": pl.List(pl.Int64)})
        .with_columns(length=pl.col("item").list.len().cast(pl.Int64),
                      position=pl.int_ranges(pl.col("item").list.len(), dtype=pl.Int64))
        .explode("item", "position")
        .drop_nulls("item")  # a user with an empty list explodes to one null row
        .select(user_id=pl.format("u{}", "user"), item_id=pl.format("a{}", "item"),
                position="position", length="length")
        .cast(INTERACTIONS_SCHEMA)
    )


def cold_items(items: Iterable[str], share: float, seed: int) -> set[str]:
    """``round(share * n)`` item ids picked by a seeded hash: the same ids, seed and share give
    the same set in every process (Python's ``hash()`` is salted per process)."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"cold item share must be within [0, 1], got {share}")
    ids = sorted(set(items))
    ranked = sorted(ids, key=lambda item_id: _seeded_hash(item_id, seed))
    return set(ranked[:round(share * len(ids))])


def _seeded_hash(item_id: str, seed: int) -> bytes:
    return hashlib.blake2b(f"{seed}:{item_id}".encode(), digest_size=8).digest()


def first_day(interactions: pl.DataFrame, end: date) -> date:
    """The day of the oldest interaction: the longest sequence reaches back furthest."""
    return end - timedelta(days=int(interactions["length"].max()) - 1)


def _dated(interactions: pl.DataFrame, end: date) -> pl.DataFrame:
    """Adds ``day`` (aligned at ``end``) and ``ts`` (noon UTC plus a per-user offset)."""
    back = pl.duration(days=pl.col("length") - 1 - pl.col("position"))
    # Distinct per-user seconds give every event of a day a distinct, reproducible time.
    offset = pl.duration(seconds=pl.col("user_id").str.slice(1).cast(pl.Int64) % MAX_USER_OFFSET_S)
    noon = datetime(end.year, end.month, end.day, EVENT_HOUR, tzinfo=UTC)
    return interactions.with_columns(day=pl.lit(end) - back,
                                     ts=pl.lit(noon).dt.cast_time_unit("us") - back + offset)


def _cold_mask(cold: set[str] | frozenset[str], cold_from: date | None) -> pl.Expr:
    """Rows of cold items before ``cold_from``: the ones left out of the raw days."""
    if cold and cold_from is None:
        raise ValueError("cold items need cold_from, the first day their events are kept")
    if not cold:
        return pl.lit(False)
    return pl.col("item_id").is_in(sorted(cold)) & (pl.col("day") < cold_from)


@dataclass(frozen=True)
class ColdSummary:
    items: int  # cold items with at least one interaction
    dropped: int  # their events before cold_from, left out of the raw days
    kept: int  # their events on or after cold_from, left for evaluation


def cold_summary(interactions: pl.DataFrame, end: date, cold: set[str] | frozenset[str],
                 cold_from: date | None) -> ColdSummary:
    """What ``to_raw_days`` with the same arguments leaves out, for a caller to report."""
    dated = _dated(interactions, end).filter(pl.col("item_id").is_in(sorted(cold)))
    dropped = dated.filter(_cold_mask(cold, cold_from)).height
    return ColdSummary(items=dated["item_id"].n_unique(), dropped=dropped,
                       kept=dated.height - dropped)


def _events(interactions: pl.DataFrame) -> pl.DataFrame:
    return interactions.select(
        "day",
        event_id=pl.format("e{}-{}", pl.col("user_id").str.slice(1), "position"),
        user_id="user_id", item_id="item_id", event_type=pl.lit("purchase"), ts="ts",
        value=pl.lit(None, pl.Float64), text=pl.lit(None, pl.String),
    ).sort("ts", "event_id")


def _catalog(items: pl.DataFrame, day: date) -> pl.DataFrame:
    """Every item as available from 00:00 UTC of ``day``."""
    return items.with_columns(
        available=pl.lit(True),
        updated_at=pl.lit(datetime(day.year, day.month, day.day, tzinfo=UTC)),
    ).select(list(ITEM_COLUMNS)).cast(ITEM_COLUMNS)


def _check_known_items(interactions: pl.DataFrame, items: pl.DataFrame, folder: Path) -> None:
    unknown = interactions.join(items, on="item_id", how="anti")["item_id"].unique().sort()
    if unknown.len():
        raise ValueError(f"{folder / INTERACTIONS_FILE}: {unknown.len()} item(s) not in "
                         f"{ITEMS_FILE}, e.g. {', '.join(unknown.head(3))}")


def to_raw_days(folder: str | Path, end: date, cold: set[str] | frozenset[str] = frozenset(),
                cold_from: date | None = None) -> Iterator[RawDay]:
    """One RawDay per day from the first to ``end``, oldest first. The whole catalog lands on
    the first day; events of ``cold`` items dated before ``cold_from`` are left out."""
    folder = Path(folder)
    items = load_amazon_items(folder)
    interactions = load_amazon_interactions(folder)
    if interactions.is_empty():
        raise ValueError(f"{folder / INTERACTIONS_FILE}: no interactions")
    _check_known_items(interactions, items, folder)
    start = first_day(interactions, end)
    dated = _dated(interactions, end)
    events = _events(dated.filter(~_cold_mask(cold, cold_from)))
    by_day = events.partition_by("day", as_dict=True, maintain_order=True)
    empty = events.clear().drop("day").cast(EVENT_COLUMNS)
    for offset in range((end - start).days + 1):
        day = start + timedelta(days=offset)
        day_events = by_day.get((day,))
        yield RawDay(
            ds=day,
            events=empty if day_events is None else day_events.drop("day").cast(EVENT_COLUMNS),
            items=_catalog(items, day) if day == start else empty_items(),
        )
