"""Pairs mined from a handful of events whose pairs are known by hand."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from pipelines.embed.pairs import co_interaction_pairs, mine_pairs, next_item_pairs
from pipelines.embed.texts import user_texts

T0 = datetime(2026, 10, 1, 12)
TEMPLATE = "{title}"
CATALOG = pl.DataFrame({"item_id": ["a", "b", "c", "d"], "title": ["Apple", "Bread", "Cheese",
                                                                    "Dates"],
                        "description": None, "category": None, "tags": None},
                       schema_overrides={"description": pl.String, "category": pl.String,
                                         "tags": pl.String})


def _events(rows: list[tuple[str, str, str, int]]) -> pl.DataFrame:
    """(user, item, type, hours after T0) rows as clean events."""
    return pl.DataFrame({
        "event_id": [f"e{i}" for i in range(len(rows))],
        "user_id": [r[0] for r in rows], "item_id": [r[1] for r in rows],
        "event_type": [r[2] for r in rows],
        "ts": [T0 + timedelta(hours=r[3]) for r in rows],
        "value": [None] * len(rows), "text": [None] * len(rows),
    }, schema_overrides={"value": pl.Float64, "text": pl.String})


# u1: a (viewed, then bought: one step), then b, then c five days later; u2: c then d; the
# unknown item x is not in the catalog.
EVENTS = _events([("u1", "a", "view", 0), ("u1", "a", "purchase", 1), ("u1", "b", "view", 2),
                  ("u1", "x", "view", 3), ("u1", "c", "view", 120), ("u2", "c", "click", 5),
                  ("u2", "d", "view", 6)])


def test_next_item_pairs_read_the_history_the_nightly_embed_writes() -> None:
    pairs = next_item_pairs(EVENTS, CATALOG, TEMPLATE, k=2, n=100, seed=0)
    got = sorted(zip(pairs["anchor"], pairs["positive"], strict=True))
    history = user_texts(EVENTS.filter(pl.col("event_id").is_in(["e1", "e2"])), CATALOG, 2)
    assert got == sorted([
        ("bought Apple; viewed Apple", "Bread"),      # u1 after a (viewed, then bought)
        (history["text"][0], "Cheese"),               # u1's last two events before c
        ("clicked Cheese", "Dates"),                  # u2
    ])
    assert history["text"][0] == "viewed Bread; bought Apple"
    assert set(pairs["kind"]) == {"next"}


def test_co_interaction_pairs_stay_within_the_window() -> None:
    pairs = co_interaction_pairs(EVENTS, CATALOG, TEMPLATE, window_days=3, n=100, seed=0)
    assert sorted(zip(pairs["anchor"], pairs["positive"], strict=True)) == [
        ("Apple", "Bread"), ("Cheese", "Dates")]  # b -> c took five days
    wide = co_interaction_pairs(EVENTS, CATALOG, TEMPLATE, window_days=7, n=100, seed=0)
    assert ("Bread", "Cheese") in list(zip(wide["anchor"], wide["positive"], strict=True))


def test_mined_pairs_are_capped_and_seeded() -> None:
    rows = [(f"u{u}", "abcd"[(u + s) % 4], "view", s) for u in range(30) for s in range(4)]
    events = _events(rows)
    pairs = mine_pairs(events, CATALOG, TEMPLATE, k=3, window_days=3, max_pairs=20, seed=5)
    assert pairs.height == 20
    counts = dict(pairs.group_by("kind").len().iter_rows())
    # Four distinct item pairs co-occur, so "next" pairs fill the rest of the cap.
    assert counts == {"co": 4, "next": 16}
    assert pairs.equals(mine_pairs(events, CATALOG, TEMPLATE, 3, 3, 20, seed=5))
    assert not pairs.equals(mine_pairs(events, CATALOG, TEMPLATE, 3, 3, 20, seed=6))
