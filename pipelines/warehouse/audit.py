"""The audit a run's lists must pass before they are published.

It runs on an in-memory DuckDB over the run's Arrow tables, before the warehouse is touched, so
the same rules hold on every backend and DuckDB's single-writer lock is not held meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from pipelines.core.errors import AuditError


@dataclass(frozen=True)
class PublishRules:
    top_n: int
    min_user_coverage: float = 0.0  # share of the active users that must get a list
    retention_days: int = 0         # days of history kept, the newest included; 0 keeps all
    similar_items: int = 20         # most similar items per item


AUDITS: dict[str, str] = {
    "no recommendations at all (publishing would move the current view back)": """
        select 1 where not exists (select 1 from staged_recs)""",
    "more rows than top_n for a user": """
        select user_id from staged_recs group by user_id having count(*) > $top_n""",
    "(user_id, rank) not unique": """
        select user_id, rank from staged_recs group by user_id, rank having count(*) > 1""",
    "ranks not contiguous from 1": """
        select user_id from staged_recs group by user_id
        having min(rank) <> 1 or max(rank) <> count(*)""",
    "an item twice in one list": """
        select user_id, item_id from staged_recs group by user_id, item_id having count(*) > 1""",
    "scores increase with rank": """
        select user_id from (
            select user_id, score,
                   lag(score) over (partition by user_id order by rank) as prev_score
            from staged_recs
        ) where score > prev_score""",
    "item not in the catalog": """
        select r.item_id from staged_recs as r anti join catalog as c on r.item_id = c.item_id""",
    "item not available": """
        select r.item_id from staged_recs as r
        inner join catalog as c on r.item_id = c.item_id where not c.available""",
    "item the user has already interacted with": """
        select r.user_id, r.item_id from staged_recs as r
        inner join seen as s on r.user_id = s.user_id and r.item_id = s.item_id""",
    "null in a required column": """
        select * from staged_recs
        where user_id is null or item_id is null or rank is null or score is null
           or ds is null or model_version is null or run_id is null""",
    "score not finite": """
        select user_id, rank, score from staged_recs where not isfinite(score)""",
    "user coverage below the configured share": """
        select count(distinct user_id) as users, $active as active_users from staged_recs
        having count(distinct user_id) < $min_coverage * $active""",
}


def _failures(con, audits: dict[str, str], params: dict) -> list[str]:
    """Each rule of ``audits`` that rows break, with their count and an example."""
    failures = []
    for rule, sql in audits.items():
        used = {k: v for k, v in params.items() if f"${k}" in sql}
        rows = con.execute(f"select count(*) from ({sql})", used).fetchall()[0][0]
        if rows:
            example = con.execute(f"{sql} limit 1", used).fetchall()[0]
            failures.append(f"{rule}: {rows} row(s), e.g. {example}")
    return failures


def audit_run(recommendations: pl.DataFrame, catalog: pl.DataFrame, seen: pl.DataFrame,
              rules: PublishRules, active_users: int) -> None:
    """Raise AuditError listing every rule ``recommendations`` breaks, with an example each."""
    import duckdb

    params = {"top_n": rules.top_n, "active": active_users,
              "min_coverage": rules.min_user_coverage}
    con = duckdb.connect()
    try:
        con.register("staged_recs", recommendations.to_arrow())
        con.register("catalog", catalog.select("item_id", "available").to_arrow())
        con.register("seen", seen.select("user_id", "item_id").to_arrow())
        failures = _failures(con, AUDITS, params)
    finally:
        con.close()
    if failures:
        raise AuditError("staged recommendations failed the audit:\n  " + "\n  ".join(failures))


SIMILAR_AUDITS: dict[str, str] = {
    "more rows than the configured count for an item": """
        select item_id from staged_similar group by item_id having count(*) > $k""",
    "(item_id, rank) not unique": """
        select item_id, rank from staged_similar group by item_id, rank having count(*) > 1""",
    "ranks not contiguous from 1": """
        select item_id from staged_similar group by item_id
        having min(rank) <> 1 or max(rank) <> count(*)""",
    "an item similar to itself": """
        select item_id from staged_similar where item_id = similar_item_id""",
    "a similar item twice for one item": """
        select item_id, similar_item_id from staged_similar
        group by item_id, similar_item_id having count(*) > 1""",
    "scores increase with rank": """
        select item_id from (
            select item_id, score,
                   lag(score) over (partition by item_id order by rank) as prev_score
            from staged_similar
        ) where score > prev_score""",
    "similar item not in the catalog": """
        select s.similar_item_id from staged_similar as s
        anti join catalog as c on s.similar_item_id = c.item_id""",
    "similar item not available": """
        select s.similar_item_id from staged_similar as s
        inner join catalog as c on s.similar_item_id = c.item_id where not c.available""",
    "null in a required column": """
        select * from staged_similar
        where item_id is null or similar_item_id is null or rank is null or score is null
           or reason is null or model_version is null""",
    "score not finite": """
        select item_id, rank, score from staged_similar where not isfinite(score)""",
}


def audit_similar(similar: pl.DataFrame, catalog: pl.DataFrame, k: int) -> None:
    """Raise AuditError listing every rule the similar items break, as ``audit_run`` does for
    the lists: no item similar to itself, available catalog items only, contiguous ranks."""
    import duckdb

    con = duckdb.connect()
    try:
        con.register("staged_similar", similar.to_arrow())
        con.register("catalog", catalog.select("item_id", "available").to_arrow())
        failures = _failures(con, SIMILAR_AUDITS, {"k": k})
    finally:
        con.close()
    if failures:
        raise AuditError("staged similar items failed the audit:\n  " + "\n  ".join(failures))
