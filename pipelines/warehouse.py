"""The DuckDB warehouse: DDL, write-audit-publish of one run, and run records.

The database file is opened only for the seconds an operation needs (DuckDB allows one writer
and locks readers out meanwhile). A publish stages the run, audits the staged rows and then
replaces the run's ``ds`` in a single transaction, so readers of ``recs.recommendations_current``
see either the previous complete run or the new one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import polars as pl

SQL_DIR = Path(__file__).resolve().parents[1] / "sql"


class AuditError(RuntimeError):
    """The staged run broke a publishing rule; nothing was published."""


@dataclass(frozen=True)
class RunBatch:
    """Everything one run publishes for its ``ds``."""

    ds: date
    run_id: str
    model_version: str
    recommendations: pl.DataFrame  # user_id, rank, item_id, score, reason
    popular: pl.DataFrame          # rank, item_id, score
    metrics: pl.DataFrame          # model, metric, k, value
    catalog: pl.DataFrame          # item_id, available (as of ds)
    seen: pl.DataFrame             # user_id, item_id pairs that must not be recommended
    top_n: int
    started_at: datetime
    finished_at: datetime
    message: str = "published"
    report: str | None = None  # where the run's HTML report is


def ddl_statements() -> list[str]:
    """The warehouse DDL, one file per object, in file-name order."""
    return [p.read_text() for p in sorted((SQL_DIR / "ddl").glob("*.sql"))]


class DuckDBWarehouse:
    def __init__(self, path: str) -> None:
        self.path = path

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator:
        import duckdb

        if not read_only:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(self.path, read_only=read_only)
        try:
            yield con
        finally:
            con.close()

    def publish(self, batch: RunBatch) -> int:
        """Stage, audit and publish one run; returns the number of rows published."""
        recs = batch.recommendations.with_columns(
            pl.lit(batch.ds).alias("ds"),
            pl.lit(batch.model_version).alias("model_version"),
            pl.lit(batch.run_id).alias("run_id"),
        ).select("ds", "user_id", "rank", "item_id", "score", "reason", "model_version", "run_id")
        popular = batch.popular.with_columns(
            pl.lit(batch.ds).alias("ds"), pl.lit(batch.run_id).alias("run_id")
        ).select("ds", "rank", "item_id", "score", "run_id")
        metrics = batch.metrics.with_columns(
            pl.lit(batch.run_id).alias("run_id"), pl.lit(batch.ds).alias("ds")
        ).select("run_id", "ds", "model", "metric", "k", "value")
        with self.connect() as con:
            for statement in ddl_statements():
                con.execute(statement)
            con.register("staged_recs", recs.to_arrow())
            con.register("staged_popular", popular.to_arrow())
            con.register("staged_metrics", metrics.to_arrow())
            con.register("catalog", batch.catalog.select("item_id", "available").to_arrow())
            con.register("seen", batch.seen.select("user_id", "item_id").to_arrow())
            audit(con, batch.top_n)
            con.execute("begin transaction")
            try:
                con.execute("delete from recs.recommendations where ds = ?", [batch.ds])
                con.execute("insert into recs.recommendations select * from staged_recs")
                con.execute("delete from recs.popular_items where ds = ?", [batch.ds])
                con.execute("insert into recs.popular_items select * from staged_popular")
                con.execute("delete from recs.model_metrics where ds = ?", [batch.ds])
                con.execute("insert into recs.model_metrics select * from staged_metrics")
                _upsert_run(con, batch.run_id, batch.ds, "success", batch.started_at,
                            batch.finished_at, batch.model_version,
                            recs["user_id"].n_unique(), recs.height, batch.message,
                            batch.report)
                con.execute("commit")
            except BaseException:
                con.execute("rollback")
                raise
        return recs.height

    def record_run(self, run_id: str, ds: date, status: str, started_at: datetime | None,
                   finished_at: datetime | None, message: str, report: str | None = None,
                   ) -> None:
        """Record a run that did not publish (failed, or refused by a check)."""
        with self.connect() as con:
            for statement in ddl_statements():
                con.execute(statement)
            _upsert_run(con, run_id, ds, status, started_at, finished_at, None, None, None,
                        message, report)

    def record_dq(self, run_id: str, ds: date, rows: list[dict]) -> None:
        """Replace the data-quality results of a run (one row per expectation and dataset)."""
        frame = pl.DataFrame(
            [{"run_id": run_id, "ds": ds, **row} for row in rows],
            schema={"run_id": pl.String, "ds": pl.Date, "dataset": pl.String,
                    "expectation": pl.String, "success": pl.Boolean,
                    "unexpected_count": pl.Int64, "details": pl.String},
        )
        with self.connect() as con:
            for statement in ddl_statements():
                con.execute(statement)
            con.register("staged_dq", frame.to_arrow())
            con.execute("begin transaction")
            try:
                con.execute("delete from recs.dq_results where run_id = ?", [run_id])
                con.execute("insert into recs.dq_results select * from staged_dq")
                con.execute("commit")
            except BaseException:
                con.execute("rollback")
                raise

    def published_metrics(self, before: date, metric: str, k: int) -> pl.DataFrame:
        """``model, metric, k, value`` of the newest run published for a ``ds`` before
        ``before`` whose evaluation has ``metric@k`` for the hybrid and popularity (empty when
        there is none: runs published unevaluated are skipped)."""
        empty = pl.DataFrame(schema={"model": pl.String, "metric": pl.String, "k": pl.Int32,
                                     "value": pl.Float64})
        if not Path(self.path).exists():
            return empty
        with self.connect(read_only=True) as con:
            tables = con.execute("select count(*) from information_schema.tables where "
                                 "table_schema = 'recs' and table_name = 'model_metrics'"
                                 ).fetchall()
            if not tables[0][0]:
                return empty
            found = con.sql(
                """
                select model, metric, k, value from recs.model_metrics
                where ds = (
                    select m.ds from recs.model_metrics m
                    where m.ds < ? and m.metric = ? and m.k = ?
                      and m.model in ('hybrid', 'popularity')
                      and m.ds in (select ds from recs.pipeline_runs where status = 'success')
                    group by m.ds having count(distinct m.model) = 2
                    order by m.ds desc limit 1)
                order by model, metric, k
                """, params=[before, metric, k]).to_arrow_table()
        return pl.from_arrow(found).cast(empty.schema) if found.num_rows else empty

    def query(self, sql: str, params: list | None = None) -> pl.DataFrame:
        with self.connect(read_only=True) as con:
            return pl.from_arrow(con.sql(sql, params=params or None).to_arrow_table())


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
    "item not in the catalog or not available": """
        select r.item_id from staged_recs as r
        left join catalog as c on r.item_id = c.item_id
        where c.item_id is null or not c.available""",
    "item the user has already interacted with": """
        select r.user_id, r.item_id from staged_recs as r
        inner join seen as s on r.user_id = s.user_id and r.item_id = s.item_id""",
    "null in a required column": """
        select * from staged_recs
        where user_id is null or item_id is null or rank is null or score is null""",
}


def audit(con, top_n: int) -> None:
    """Raise AuditError listing every rule the staged rows break, with an example."""
    failures = []
    for rule, sql in AUDITS.items():
        rows = con.execute(f"select count(*) from ({sql})", {"top_n": top_n}
                           if "$top_n" in sql else []).fetchone()[0]
        if rows:
            example = con.execute(f"{sql} limit 1", {"top_n": top_n}
                                  if "$top_n" in sql else []).fetchone()
            failures.append(f"{rule}: {rows} row(s), e.g. {example}")
    if failures:
        raise AuditError("staged recommendations failed the audit:\n  " + "\n  ".join(failures))


def _upsert_run(con, run_id: str, ds: date, status: str, started_at: datetime | None,
                finished_at: datetime | None, model_version: str | None, n_users: int | None,
                n_rows: int | None, message: str, report: str | None = None) -> None:
    con.execute(
        """
        insert into recs.pipeline_runs
            (run_id, ds, status, started_at, finished_at, model_version, n_users, n_rows, message,
             report)
        values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        on conflict (run_id) do update set
            ds = excluded.ds, status = excluded.status,
            started_at = coalesce(excluded.started_at, recs.pipeline_runs.started_at),
            finished_at = excluded.finished_at, model_version = excluded.model_version,
            n_users = excluded.n_users, n_rows = excluded.n_rows, message = excluded.message,
            report = coalesce(excluded.report, recs.pipeline_runs.report)
        """,
        [run_id, ds, status, started_at, finished_at, model_version, n_users, n_rows, message,
         report],
    )
