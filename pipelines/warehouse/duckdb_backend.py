"""The embedded warehouse: one DuckDB file.

DuckDB lets one process write a file and locks every other process out meanwhile, readers
included, so the file is opened only for the seconds an operation needs; everything that can
happen before (reading the staged lists, the audit) happens with the file closed. Opening waits
for a lock held by someone else for up to ``lock_timeout_s``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from pipelines.core.errors import WarehouseLocked
from pipelines.core.failpoints import failpoint
from pipelines.warehouse import (
    TABLE_COLUMNS,
    AuditError,
    PublishRules,
    RunBatch,
    audit_run,
    audit_similar,
    ddl_statements,
    retention_cutoff,
    run_tables,
)
from pipelines.warehouse.common import (
    DDL_STATE,
    DQ_SCHEMA,
    INSERT_LATE_RUN,
    PER_DS_TABLES,
    PUBLISHED_LIFT,
    UPSERT_RUN,
    ddl_digest,
)

LOAD_CHUNK_ROWS = 1_000_000


class DuckDBWarehouse:
    dialect = "duckdb"

    def __init__(self, path: str, lock_timeout_s: float = 60.0) -> None:
        self.path = path
        self.lock_timeout_s = lock_timeout_s

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator:
        import duckdb

        if not read_only:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(self.path, read_only=read_only)
                break
            except duckdb.IOException as e:
                if "lock" not in str(e).lower():
                    raise
                if time.monotonic() > deadline:
                    raise WarehouseLocked(f"{self.path} stayed locked by another process for "
                                          f"{self.lock_timeout_s:g} s: {e}") from e
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        try:
            yield con
        finally:
            con.close()

    def ensure_schema(self, con) -> None:
        statements = ddl_statements(self.dialect)
        digest = ddl_digest(statements)
        con.execute("create schema if not exists recs_staging")
        con.execute(DDL_STATE)
        if con.execute("select 1 from recs_staging.ddl_state where digest = ?",
                       [digest]).fetchall():
            return
        for _, text in statements:
            con.execute(text)
        con.execute("insert into recs_staging.ddl_state values (?, ?)",
                    [digest, datetime.now(UTC)])

    def publish(self, batch: RunBatch, rules: PublishRules) -> int:
        """Audit, load into staging, check the load, swap the ``ds`` in one transaction."""
        tables = run_tables(batch)
        recs = tables["recommendations"]
        audit_run(recs, batch.catalog, batch.seen, rules, batch.active_users)
        audit_similar(tables["similar_items"], batch.catalog, rules.similar_items)
        staging = f"recs_staging.recommendations_{batch.ds:%Y%m%d}"  # from a date: no input text
        with self.connect() as con:
            self.ensure_schema(con)
            con.execute(f"create or replace table {staging} as "
                        "select * from recs.recommendations limit 0")
            for i, chunk in enumerate(recs.iter_slices(LOAD_CHUNK_ROWS)):
                con.register("chunk", chunk.to_arrow())
                con.execute(f"insert into {staging} select * from chunk")
                con.unregister("chunk")
                if i == 0:
                    failpoint("publish:loading")
            loaded = con.execute(f"select count(*), count(distinct user_id) from {staging}"
                                 ).fetchall()[0]
            if loaded != (recs.height, recs["user_id"].n_unique()):
                raise AuditError(f"staging load of {batch.ds} incomplete: {loaded[0]} rows of "
                                 f"{recs.height}")
            failpoint("publish:staged")
            con.execute("begin transaction")
            try:
                con.execute("delete from recs.recommendations where ds = ?", [batch.ds])
                con.execute(f"insert into recs.recommendations select * from {staging}")
                for name in PER_DS_TABLES:
                    con.register("rows", tables[name].to_arrow())
                    con.execute(f"delete from recs.{name} where ds = ?", [batch.ds])
                    columns = ", ".join(TABLE_COLUMNS[name])
                    con.execute(f"insert into recs.{name} ({columns}) select {columns} from rows")
                    con.unregister("rows")
                self._apply_retention(con, rules.retention_days)
                con.execute(UPSERT_RUN, [batch.run_id, batch.ds, "success", batch.started_at,
                                         batch.finished_at, batch.model_version,
                                         recs["user_id"].n_unique(), recs.height,
                                         batch.message, batch.report, batch.gate_verdict,
                                         batch.gate_reason])
                failpoint("publish:swap")
                con.execute("commit")
            except BaseException:
                con.execute("rollback")
                raise
            con.execute(f"drop table if exists {staging}")
        return recs.height

    @staticmethod
    def _apply_retention(con, retention_days: int) -> None:
        newest = con.execute("select max(ds) from recs.recommendations").fetchall()[0][0]
        cutoff = retention_cutoff(newest, retention_days) if newest else None
        if cutoff is None:
            return
        con.execute("delete from recs.recommendations where ds < ?", [cutoff])
        for name, retained in PER_DS_TABLES.items():
            if retained:
                con.execute(f"delete from recs.{name} where ds < ?", [cutoff])

    def record_run(self, run_id: str, ds: date, status: str, started_at: datetime | None,
                   finished_at: datetime | None, message: str, report: str | None = None,
                   ) -> None:
        """Record a run that did not publish (failed, or refused by a check)."""
        with self.connect() as con:
            self.ensure_schema(con)
            con.execute(UPSERT_RUN, [run_id, ds, status, started_at, finished_at, None, None,
                                     None, message, report, None, None])

    def record_late(self, run_id: str, ds: date, message: str) -> None:
        with self.connect() as con:
            self.ensure_schema(con)
            con.execute(INSERT_LATE_RUN, [run_id, ds, message])

    def record_dq(self, run_id: str, ds: date, rows: list[dict]) -> None:
        """Replace the data-quality results of a run (one row per expectation and dataset)."""
        frame = pl.DataFrame([{"run_id": run_id, "ds": ds, **row} for row in rows],
                             schema=DQ_SCHEMA)
        with self.connect() as con:
            self.ensure_schema(con)
            con.register("staged_dq", frame.to_arrow())
            con.execute("begin transaction")
            try:
                con.execute("delete from recs.dq_results where run_id = ?", [run_id])
                con.execute("insert into recs.dq_results select * from staged_dq")
                con.execute("commit")
            except BaseException:
                con.execute("rollback")
                raise

    def published_lift(self, before: date, metric: str, k: int) -> float | None:
        """The published candidate's ``metric@k`` lift in the newest run before ``before``
        that published one (None when there is none)."""
        if not Path(self.path).exists():
            return None
        with self.connect(read_only=True) as con:
            if not con.execute("select count(*) from information_schema.tables where "
                               "table_schema = 'recs' and table_name = 'model_metrics'"
                               ).fetchall()[0][0]:
                return None
            rows = con.sql(PUBLISHED_LIFT, params=[before, metric, k]).fetchall()
        return float(rows[0][0]) if rows else None

    def query(self, sql: str, params: list | None = None) -> pl.DataFrame:
        with self.connect(read_only=True) as con:
            return pl.from_arrow(con.sql(sql, params=params or None).to_arrow_table())
