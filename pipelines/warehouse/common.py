"""SQL both backends run as is (``?`` placeholders; the PostgreSQL backend translates them)."""

from __future__ import annotations

import hashlib

import polars as pl

# The published candidate's lift (ranker or ranker_explore, named by the version's suffix) in
# the newest run before the given ds that published a candidate.
PUBLISHED_LIFT = """
    select m.value from recs.model_metrics m
    join recs.pipeline_runs r on r.run_id = m.run_id
    where m.ds < ? and m.metric = ? and m.k = ?
      and r.status = 'success' and r.model_version like '%:' || m.model
    order by m.ds desc limit 1
"""

UPSERT_RUN = """
    insert into recs.pipeline_runs
        (run_id, ds, status, started_at, finished_at, model_version, n_users, n_rows, message,
         report, gate_verdict, gate_reason)
    values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    on conflict (run_id) do update set
        ds = excluded.ds, status = excluded.status,
        started_at = coalesce(excluded.started_at, recs.pipeline_runs.started_at),
        finished_at = excluded.finished_at, model_version = excluded.model_version,
        n_users = excluded.n_users, n_rows = excluded.n_rows,
        -- an outcome after a missed deadline keeps the lateness in its message
        message = case when recs.pipeline_runs.status = 'late' and excluded.status <> 'late'
                       then excluded.message || ' (was late: ' || recs.pipeline_runs.message || ')'
                       else excluded.message end,
        report = coalesce(excluded.report, recs.pipeline_runs.report),
        gate_verdict = excluded.gate_verdict, gate_reason = excluded.gate_reason
"""

# A missed deadline marks a run that has no outcome yet; an outcome is never overwritten.
INSERT_LATE_RUN = """
    insert into recs.pipeline_runs (run_id, ds, status, message)
    values (?, ?, 'late', ?)
    on conflict (run_id) do nothing
"""

DQ_SCHEMA = {"run_id": pl.String, "ds": pl.Date, "dataset": pl.String,
             "expectation": pl.String, "success": pl.Boolean, "unexpected_count": pl.Int64,
             "details": pl.String}

# Tables a run's publish replaces per ds (besides recommendations) and whether retention
# applies to them (metrics and run records are kept: the quality gate reads past metrics).
PER_DS_TABLES = {"popular_items": True, "items": True, "similar_items": True,
                 "model_metrics": False}


def ddl_digest(statements: list[tuple[str, str]]) -> str:
    """Identifies a DDL version, so a warehouse already at it is not altered again."""
    h = hashlib.sha256()
    for name, text in statements:
        h.update(name.encode() + b"\0" + text.encode() + b"\0")
    return h.hexdigest()[:16]


DDL_STATE = """
    create table if not exists recs_staging.ddl_state (
        digest text primary key,
        applied_at timestamp with time zone not null
    )
"""
