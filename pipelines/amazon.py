"""The Amazon "Industrial & Scientific" set (LC-Rec format): product texts as a catalog.

``Scientific.item.json`` maps an item index to ``title, description, brand, categories``; the
catalog gets ``category`` from the category path (``a,b,c`` becomes ``a|b|c``, the catalog's
list separator) and ``tags`` from the brand.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

ITEMS_FILE = "Scientific.item.json"


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
