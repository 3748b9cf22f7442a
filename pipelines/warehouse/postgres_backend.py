"""The server warehouse: PostgreSQL, with ``recs.recommendations`` partitioned by ``ds``.

A publish loads the run into a staging table with binary COPY, adds the partition's check
constraint and primary key there (outside any lock consumers wait on), then, in one
transaction, detaches and drops the ``ds``'s old partition, attaches the new one and replaces
the run's small per-day tables. Attaching a table whose check constraint proves its bound and
whose index matches the parent's is a catalog change, so the transaction lasts milliseconds
whatever the run's size. Readers keep reading the old partition until it commits (MVCC, and
the detach's lock), then see the new one: never a mix.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime

import polars as pl

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

log = logging.getLogger("recs.warehouse")

PG_TYPES = {pl.Date: "date", pl.String: "text", pl.Int32: "int4", pl.Int64: "int8",
            pl.Float64: "float8", pl.Boolean: "bool"}
PARTITION_NAME = re.compile(r"^recommendations_(\d{8})$")
COPY_ROWS = 100_000
ROLE_FILE = "900_reader_role.sql"


def _pg(sql: str) -> str:
    """Our shared SQL uses DuckDB's ``?`` placeholders; psycopg's are ``%s``."""
    return sql.replace("%", "%%").replace("?", "%s")


def partition_name(ds: date) -> str:
    return f"recommendations_{ds:%Y%m%d}"


class PostgresWarehouse:
    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url

    @contextmanager
    def connect(self) -> Iterator:
        import psycopg

        with psycopg.connect(self.url, application_name="recs") as con:
            yield con

    def ensure_schema(self, con) -> None:
        statements = ddl_statements(self.dialect)
        digest = ddl_digest(statements)
        with con.transaction():
            con.execute("create schema if not exists recs_staging")
            con.execute(DDL_STATE)
            if con.execute("select 1 from recs_staging.ddl_state where digest = %s",
                           [digest]).fetchall():
                return
            # One DDL at a time, whoever runs it (two tasks may start on an empty server).
            con.execute("lock table recs_staging.ddl_state in exclusive mode")
            if con.execute("select 1 from recs_staging.ddl_state where digest = %s",
                           [digest]).fetchall():
                return
            for name, text in statements:
                if name == ROLE_FILE:
                    self._grant_reader(con, text)
                else:
                    con.execute(text)
            con.execute("insert into recs_staging.ddl_state values (%s, %s)",
                        [digest, datetime.now(UTC)])

    @staticmethod
    def _grant_reader(con, text: str) -> None:
        """Roles are cluster-wide and need CREATEROLE: a pipeline login without it still
        publishes, and the log says which file an administrator runs once."""
        import psycopg

        try:
            with con.transaction():
                con.execute(text)
        except psycopg.errors.InsufficientPrivilege as e:
            log.warning("recs_reader role not set up (%s): run sql/ddl/postgresql/%s as an "
                        "administrator", e, ROLE_FILE)

    def publish(self, batch: RunBatch, rules: PublishRules) -> int:
        """Audit, COPY into staging, check the load, swap the ``ds``'s partition."""
        from psycopg import sql

        tables = run_tables(batch)
        recs = tables["recommendations"]
        audit_run(recs, batch.catalog, batch.seen, rules, batch.active_users)
        audit_similar(tables["similar_items"], batch.catalog, rules.similar_items)
        name = partition_name(batch.ds)
        staging = sql.Identifier("recs_staging", name)
        with self.connect() as con:
            self.ensure_schema(con)
            with con.transaction():
                con.execute(sql.SQL("drop table if exists {}").format(staging))
                con.execute(sql.SQL("create table {} (like recs.recommendations)"
                                    ).format(staging))
                self._copy(con, staging, recs, "recommendations", failpoint_after_first=True)
                loaded = con.execute(sql.SQL("select count(*), count(distinct user_id) from {}"
                                             ).format(staging)).fetchall()[0]
                if loaded != (recs.height, recs["user_id"].n_unique()):
                    raise AuditError(f"staging load of {batch.ds} incomplete: {loaded[0]} rows "
                                     f"of {recs.height}")
                # Both let the attach below skip scanning the rows under its lock.
                con.execute(sql.SQL("alter table {} add constraint {} check (ds = {})").format(
                    staging, sql.Identifier(f"{name}_ds"), sql.Literal(batch.ds)))
                con.execute(sql.SQL("alter table {} add primary key (ds, user_id, rank)"
                                    ).format(staging))
            failpoint("publish:staged")
            with con.transaction():
                target = sql.Identifier("recs", name)
                if con.execute("select to_regclass(%s)", [f"recs.{name}"]).fetchall()[0][0]:
                    con.execute(sql.SQL("alter table recs.recommendations detach partition {}"
                                        ).format(target))
                    con.execute(sql.SQL("drop table {}").format(target))
                con.execute(sql.SQL("alter table {} set schema recs").format(staging))
                con.execute(sql.SQL("alter table recs.recommendations attach partition {} "
                                    "for values in ({})").format(target, sql.Literal(batch.ds)))
                for table in PER_DS_TABLES:
                    con.execute(sql.SQL("delete from {} where ds = %s").format(
                        sql.Identifier("recs", table)), [batch.ds])
                    self._copy(con, sql.Identifier("recs", table), tables[table], table)
                self._apply_retention(con, rules.retention_days)
                con.execute(_pg(UPSERT_RUN), [batch.run_id, batch.ds, "success",
                                              batch.started_at, batch.finished_at,
                                              batch.model_version, recs["user_id"].n_unique(),
                                              recs.height, batch.message, batch.report,
                                              batch.gate_verdict, batch.gate_reason])
                failpoint("publish:swap")
        return recs.height

    @staticmethod
    def _copy(con, target, frame: pl.DataFrame, table: str,
              failpoint_after_first: bool = False) -> None:
        """Binary COPY of ``frame`` (columns in ``TABLE_COLUMNS[table]`` order) into ``target``."""
        from psycopg import sql

        columns = TABLE_COLUMNS[table]
        statement = sql.SQL("copy {} ({}) from stdin (format binary)").format(
            target, sql.SQL(", ").join(map(sql.Identifier, columns)))
        types = [PG_TYPES[frame.schema[c]] for c in columns]
        with con.cursor() as cur, cur.copy(statement) as copy:
            copy.set_types(types)
            for i, chunk in enumerate(frame.iter_slices(COPY_ROWS)):
                for row in chunk.iter_rows():
                    copy.write_row(row)
                if i == 0 and failpoint_after_first:
                    failpoint("publish:loading")

    @staticmethod
    def _apply_retention(con, retention_days: int) -> None:
        """Drop the partitions (and per-day rows) older than the retention window."""
        from psycopg import sql

        parts = con.execute(
            "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
            "where i.inhparent = 'recs.recommendations'::regclass").fetchall()
        days = {datetime.strptime(m.group(1), "%Y%m%d").date(): name for (name,) in parts
                if (m := PARTITION_NAME.match(name))}
        cutoff = retention_cutoff(max(days), retention_days) if days else None
        if cutoff is None:
            return
        for ds, name in sorted(days.items()):
            if ds < cutoff:
                part = sql.Identifier("recs", name)
                con.execute(sql.SQL("alter table recs.recommendations detach partition {}"
                                    ).format(part))
                con.execute(sql.SQL("drop table {}").format(part))
        for table, retained in PER_DS_TABLES.items():
            if retained:
                con.execute(sql.SQL("delete from {} where ds < %s").format(
                    sql.Identifier("recs", table)), [cutoff])

    def record_run(self, run_id: str, ds: date, status: str, started_at: datetime | None,
                   finished_at: datetime | None, message: str, report: str | None = None,
                   ) -> None:
        with self.connect() as con:
            self.ensure_schema(con)
            with con.transaction():
                con.execute(_pg(UPSERT_RUN), [run_id, ds, status, started_at, finished_at, None,
                                              None, None, message, report, None, None])

    def record_late(self, run_id: str, ds: date, message: str) -> None:
        with self.connect() as con:
            self.ensure_schema(con)
            with con.transaction():
                con.execute(_pg(INSERT_LATE_RUN), [run_id, ds, message])

    def record_dq(self, run_id: str, ds: date, rows: list[dict]) -> None:
        from psycopg import sql

        frame = pl.DataFrame([{"run_id": run_id, "ds": ds, **row} for row in rows],
                             schema=DQ_SCHEMA)
        columns = list(DQ_SCHEMA)
        with self.connect() as con:
            self.ensure_schema(con)
            with con.transaction():
                con.execute("delete from recs.dq_results where run_id = %s", [run_id])
                statement = sql.SQL("copy recs.dq_results ({}) from stdin (format binary)"
                                    ).format(sql.SQL(", ").join(map(sql.Identifier, columns)))
                with con.cursor() as cur, cur.copy(statement) as copy:
                    copy.set_types([PG_TYPES[frame.schema[c]] for c in columns])
                    for row in frame.iter_rows():
                        copy.write_row(row)

    def published_lift(self, before: date, metric: str, k: int) -> float | None:
        with self.connect() as con:
            if not con.execute("select to_regclass('recs.model_metrics')").fetchall()[0][0]:
                return None
            rows = con.execute(_pg(PUBLISHED_LIFT), [before, metric, k]).fetchall()
        return float(rows[0][0]) if rows else None

    def query(self, sql: str, params: list | None = None) -> pl.DataFrame:
        """``sql`` with ``?`` placeholders; one statement, read in its own snapshot."""
        with self.connect() as con, con.cursor() as cur:
            cur.execute(_pg(sql) if params else sql, params or None)
            names = [d.name for d in cur.description]
            rows = cur.fetchall()
        return pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)
