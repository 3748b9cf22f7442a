"""A short, true reason per row: the nearest seen title, "new item like" for cold items,
"popular now" for the day's chart, the collaborative signal otherwise."""

from __future__ import annotations

import numpy as np
import polars as pl

from pipelines.serve.reasons import COLLABORATIVE, POPULAR, explain


def _vectors(key: str, rows: dict[str, list[float]]) -> pl.DataFrame:
    return pl.DataFrame({key: list(rows)}).with_columns(pl.Series(
        "vector", np.array(list(rows.values()), dtype=np.float32),
        dtype=pl.Array(pl.Float32, len(next(iter(rows.values()))))))


def test_reasons_are_true_to_where_a_row_came_from() -> None:
    lists = pl.DataFrame({"user_id": ["u1"] * 3, "rank": [1, 2, 3], "item_id": ["x", "y", "z"],
                          "score": [3.0, 2.0, 1.0]})
    interactions = pl.DataFrame({"user_id": ["u1", "u1"], "item_id": ["a", "b"],
                                 "confidence": [2.0, 1.0]})
    vecs = _vectors("item_id", {"a": [1.0, 0.0], "b": [0.0, 1.0], "x": [0.96, 0.28],
                                "y": [-0.6, -0.8], "z": [-0.28, 0.0]})
    catalog = pl.DataFrame({"item_id": ["a", "b", "x", "y", "z"],
                            "title": ["Alpha", "Beta", "Ex", "Why", "Zed"]})
    got = explain(lists, interactions, vecs, catalog, cold=pl.Series(["z"]))
    assert got["reason"].to_list() == ["similar to Alpha", COLLABORATIVE, "new item like Beta"]


def test_popular_items_without_a_similar_seen_item_read_popular_now() -> None:
    lists = pl.DataFrame({"user_id": ["u1"] * 3, "rank": [1, 2, 3], "item_id": ["x", "y", "w"],
                          "score": [3.0, 2.0, 1.0]})
    interactions = pl.DataFrame({"user_id": ["u1"], "item_id": ["a"], "confidence": [2.0]})
    vecs = _vectors("item_id", {"a": [1.0, 0.0], "x": [0.96, 0.28], "y": [-0.6, -0.8],
                                "w": [0.0, 1.0]})
    catalog = pl.DataFrame({"item_id": ["a", "x", "y", "w"],
                            "title": ["Alpha", "Ex", "Why", "Dub"]})
    # x is popular too, but its similarity to Alpha is the more specific reason
    got = explain(lists, interactions, vecs, catalog, popular=pl.Series(["x", "y"]))
    assert got["reason"].to_list() == ["similar to Alpha", POPULAR, COLLABORATIVE]


def test_reasons_do_not_depend_on_the_blocks_users_are_compared_in() -> None:
    """Users a block at a time or all at once, lists in any row order, users and items without
    vectors: each row's nearest seen title is the one a plain loop finds."""
    rng = np.random.default_rng(3)
    items = [f"i{j:02d}" for j in range(30)]
    raw = rng.normal(size=(30, 8)).astype(np.float32)
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    with_vectors = items[:26]  # i26..i29 have none
    vecs = _vectors("item_id", {i: unit[j].tolist() for j, i in enumerate(with_vectors)})
    catalog = pl.DataFrame({"item_id": items, "title": [f"T{i}" for i in items]})
    users = [f"u{j}" for j in range(12)]
    interactions = pl.DataFrame([
        {"user_id": u, "item_id": str(i), "confidence": float(rng.integers(1, 4))}
        for u in users[:11] for i in rng.choice(items, size=rng.integers(1, 8), replace=False)])
    lists = pl.DataFrame([
        {"user_id": u, "rank": r + 1, "item_id": str(i), "score": 1.0}
        for u in users for r, i in enumerate(rng.choice(items, size=6, replace=False))]
    ).sample(fraction=1.0, shuffle=True, seed=1)
    cold = pl.Series(items[20:])
    got = [explain(lists, interactions, vecs, catalog, min_cosine=0.3, cold=cold,
                   block_bytes=b)["reason"].to_list() for b in (1, 2**26)]
    assert got[0] == got[1]

    at = {i: j for j, i in enumerate(with_vectors)}
    want = []
    for u, i in lists.select("user_id", "item_id").iter_rows():
        seen = [s for s in interactions.filter(pl.col("user_id") == u).sort(
            ["confidence", "item_id"], descending=[True, False])["item_id"] if s in at]
        if i not in at or not seen:
            want.append(COLLABORATIVE)
            continue
        sims = [float(unit[at[i]] @ unit[at[s]]) for s in seen]
        best = int(np.argmax(sims))
        if i in cold:
            want.append(f"new item like T{seen[best]}")
        elif sims[best] >= 0.3:
            want.append(f"similar to T{seen[best]}")
        else:
            want.append(COLLABORATIVE)
    assert got[0] == want
