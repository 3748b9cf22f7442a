"""The texts a language model sees: item templates, user histories and their cache hash."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from pipelines.core.contracts import EVENT_COLUMNS
from pipelines.core.settings import EmbedSettings
from pipelines.embed.texts import check_template, item_texts, text_hash, user_texts

TEMPLATE = EmbedSettings().item_template  # "{title}. {category}. {tags}. {description}"
T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)
MIN = timedelta(minutes=1)


def _catalog(rows: list[tuple]) -> pl.DataFrame:
    """``(item_id, title, description, category, tags)`` rows."""
    return pl.DataFrame(rows, schema={"item_id": pl.String, "title": pl.String,
                                      "description": pl.String, "category": pl.String,
                                      "tags": pl.String}, orient="row")


def _events(rows: list[tuple]) -> pl.DataFrame:
    """``(event_id, user_id, item_id, event_type, minutes after T0, value, text)`` rows."""
    return pl.DataFrame(
        [(e, u, i, t, T0 + m * MIN, v, x) for e, u, i, t, m, v, x in rows],
        schema=EVENT_COLUMNS, orient="row",
    )


CATALOG = _catalog([
    ("i1", "Tea", "Green tea from Japan.", "food", "tea|green"),
    ("i2", "Mug", None, "", None),
    ("i3", None, "Only a description", None, "  "),
    ("i4", "Lamp", "", "home", "light"),
])


# --- items ------------------------------------------------------------------------------------

def test_item_texts_fill_the_template() -> None:
    got = dict(item_texts(CATALOG, TEMPLATE).iter_rows())
    assert got["i1"] == "Tea. food. tea, green. Green tea from Japan."   # tags: "|" -> ", "
    assert got["i4"] == "Lamp. home. light"


def test_item_texts_empty_fields_leave_no_dangling_punctuation() -> None:
    got = dict(item_texts(CATALOG, TEMPLATE).iter_rows())
    assert got["i2"] == "Mug"                   # null description, empty category, null tags
    assert got["i3"] == "Only a description"    # null title, blank tags
    for text in got.values():
        assert ". ." not in text and not text.startswith(".") and not text.endswith(". ")


def test_item_texts_keep_order_and_schema() -> None:
    out = item_texts(CATALOG.reverse(), "{title}")
    assert out.schema == pl.Schema({"item_id": pl.String, "text": pl.String})
    assert out["item_id"].to_list() == ["i4", "i3", "i2", "i1"]
    assert out["text"].to_list() == ["Lamp", "", "Mug", "Tea"]


def test_check_template_accepts_known_fields() -> None:
    check_template(TEMPLATE)
    check_template("{title} in {category}")
    check_template("no fields at all")


@pytest.mark.parametrize("template", ["{title}. {price}", "{name}", "{title} {brand} {colour}"])
def test_check_template_rejects_unknown_fields(template: str) -> None:
    with pytest.raises(ValueError, match="unknown field"):
        check_template(template)
    with pytest.raises(ValueError, match="embed.item_template"):
        item_texts(CATALOG, template)


def test_check_template_names_the_unknown_field() -> None:
    with pytest.raises(ValueError, match=r"\['price'\]"):
        check_template("{title} {price}")


# --- users ------------------------------------------------------------------------------------

def test_user_texts_keep_the_k_most_recent_newest_first() -> None:
    ev = _events([
        ("e1", "u1", "i1", "view", 0, 12.0, None),
        ("e2", "u1", "i2", "purchase", 10, None, None),
        ("e3", "u1", "i4", "add_to_cart", 5, None, None),
        ("e4", "u1", "i1", "click", 20, None, None),
    ])
    got = user_texts(ev, CATALOG, k=3)
    assert got.rows() == [("u1", "clicked Tea; bought Mug; added to cart Lamp")]
    assert user_texts(ev, CATALOG, k=10)["text"].item() == (
        "clicked Tea; bought Mug; added to cart Lamp; viewed Tea"
    )


def test_user_texts_ratings_and_reviews() -> None:
    ev = _events([
        ("e1", "u1", "i1", "rate", 0, 4.0, None),
        ("e2", "u1", "i1", "review", 1, None, "Lovely and fresh."),
        ("e3", "u1", "i4", "review", 2, None, "Too dim."),
        ("e4", "u2", "i2", "rate", 0, 3.26, None),
    ])
    got = dict(user_texts(ev, CATALOG, k=5).iter_rows())
    assert got == {
        "u1": "reviewed Lamp; reviewed Tea; rated Tea (rating 4.0). "
              "Reviews: Too dim. Lovely and fresh.",
        "u2": "rated Mug (rating 3.3)",
    }


def test_user_texts_reviews_outside_the_k_most_recent_are_left_out() -> None:
    ev = _events([
        ("e1", "u1", "i1", "review", 0, None, "old review"),
        ("e2", "u1", "i2", "view", 1, None, None),
    ])
    assert user_texts(ev, CATALOG, k=1)["text"].item() == "viewed Mug"


def test_user_texts_skip_items_missing_from_the_catalog_and_sort_users() -> None:
    ev = _events([
        ("e1", "u2", "i1", "view", 0, None, None),
        ("e2", "u1", "gone", "view", 3, None, None),
        ("e3", "u1", "i2", "click", 1, None, None),
        ("e4", "u3", "gone", "view", 1, None, None),   # nothing left for u3: no row
    ])
    got = user_texts(ev, CATALOG, k=1)
    assert got.rows() == [("u1", "clicked Mug"), ("u2", "viewed Tea")]


def test_user_texts_same_time_ties_by_event_id() -> None:
    ev = _events([
        ("e1", "u1", "i1", "view", 0, None, None),
        ("e2", "u1", "i2", "view", 0, None, None),
    ])
    assert user_texts(ev, CATALOG, k=1)["text"].item() == "viewed Mug"
    assert user_texts(ev.reverse(), CATALOG, k=2)["text"].item() == "viewed Mug; viewed Tea"


# --- hash -------------------------------------------------------------------------------------

def test_text_hash_is_stable_sha256() -> None:
    texts = pl.Series("text", ["Tea. food", "", "Tea. food", "thé vert"])
    hashes = text_hash(texts)
    assert hashes.name == "text"
    assert hashes.dtype == pl.String
    assert hashes[0] == hashlib.sha256(b"Tea. food").hexdigest()
    assert hashes[1] == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert hashes[0] == hashes[2]
    assert hashes[3] == hashlib.sha256("thé vert".encode()).hexdigest()
    assert text_hash(texts).to_list() == hashes.to_list()
    assert len(set(hashes.to_list())) == 3
