"""The warehouse SQL consumers read: write-audit-publish of one run, and the run records.

Two backends share one DDL (``sql/ddl``, with per-dialect files where the syntax differs) and one
publish protocol, chosen by the URL: ``duckdb:///path/file.duckdb`` (embedded, the default) or
``postgresql://user@host:port/db`` (a server; the password comes from libpq's usual places,
``PGPASSWORD`` or ``~/.pgpass``, never from the URL in a config file).

A publish audits the run's rows before touching the warehouse, loads them into a staging table,
checks the load, and then in one transaction replaces the run's ``ds`` in ``recs.recommendations``
(and its popular list, metrics, catalog and run record) and drops days past the retention. The
views read the newest ``ds``, so consumers see the previous complete run or the new one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Protocol

import polars as pl

from pipelines.warehouse.audit import AuditError, PublishRules, audit_run, audit_similar

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
DIALECTS = ("duckdb", "postgresql")

__all__ = ["AuditError", "PublishRules", "RunBatch", "Warehouse", "ddl_statements",
           "open_warehouse", "audit_run", "audit_similar", "run_tables"]


@dataclass(frozen=True)
class RunBatch:
    """Everything one run publishes for its ``ds``."""

    ds: date
    run_id: str
    model_version: str
    recommendations: pl.DataFrame  # user_id, rank, item_id, score, reason
    popular: pl.DataFrame          # rank, item_id, score
    metrics: pl.DataFrame          # model, metric, k, value
    catalog: pl.DataFrame          # item_id, title, category, available (as of ds)
    seen: pl.DataFrame             # user_id, item_id pairs that must not be recommended
    active_users: int              # users that should have a list (the coverage denominator)
    started_at: datetime
    finished_at: datetime
    message: str = "published"
    report: str | None = None  # where the run's HTML report is
    gate_verdict: str | None = None  # gate.Decision.verdict
    gate_reason: str | None = None  # gate.Decision.reason
    # item_id, rank, similar_item_id, score, reason, model_version (none: an empty table)
    similar_items: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(
        schema={c: t for c, t in TABLE_SCHEMAS["similar_items"].items()
                if c not in ("ds", "run_id")}))


class Warehouse(Protocol):
    dialect: str

    def publish(self, batch: RunBatch, rules: PublishRules) -> int: ...

    def record_run(self, run_id: str, ds: date, status: str, started_at: datetime | None,
                   finished_at: datetime | None, message: str,
                   report: str | None = None) -> None: ...

    def record_late(self, run_id: str, ds: date, message: str) -> None: ...

    def record_dq(self, run_id: str, ds: date, rows: list[dict]) -> None: ...

    def published_lift(self, before: date, metric: str, k: int) -> float | None: ...

    def query(self, sql: str, params: list | None = None) -> pl.DataFrame: ...


def open_warehouse(url: str) -> Warehouse:
    """The backend for ``url`` (connections are opened per operation, not here)."""
    if url.startswith("duckdb://"):
        from pipelines.core.settings import duckdb_path
        from pipelines.warehouse.duckdb_backend import DuckDBWarehouse

        return DuckDBWarehouse(duckdb_path(url))
    if url.startswith(("postgresql://", "postgres://")):
        from pipelines.warehouse.postgres_backend import PostgresWarehouse

        return PostgresWarehouse(url)
    raise ValueError(f"warehouse {url!r}: expected duckdb:///path/file.duckdb or "
                     "postgresql://user@host:port/db")


def ddl_statements(dialect: str) -> list[tuple[str, str]]:
    """``(file name, text)`` of the warehouse DDL in file-name order: the shared files, each
    replaced by the dialect's file of the same name where there is one, plus the dialect's own."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}")
    files = {p.name: p for p in (SQL_DIR / "ddl").glob("*.sql")}
    files |= {p.name: p for p in (SQL_DIR / "ddl" / dialect).glob("*.sql")}
    return [(name, files[name].read_text()) for name in sorted(files)]


# Columns, in table order, of what a run writes (the loaders bind by position).
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "recommendations": ("ds", "user_id", "rank", "item_id", "score", "reason", "model_version",
                        "run_id"),
    "popular_items": ("ds", "rank", "item_id", "score", "run_id"),
    "model_metrics": ("run_id", "ds", "model", "metric", "k", "value"),
    "items": ("ds", "item_id", "title", "category", "available"),
    "similar_items": ("ds", "item_id", "rank", "similar_item_id", "score", "reason",
                      "model_version", "run_id"),
}
TABLE_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "recommendations": {"ds": pl.Date, "user_id": pl.String, "rank": pl.Int32,
                        "item_id": pl.String, "score": pl.Float64, "reason": pl.String,
                        "model_version": pl.String, "run_id": pl.String},
    "popular_items": {"ds": pl.Date, "rank": pl.Int32, "item_id": pl.String,
                      "score": pl.Float64, "run_id": pl.String},
    "model_metrics": {"run_id": pl.String, "ds": pl.Date, "model": pl.String,
                      "metric": pl.String, "k": pl.Int32, "value": pl.Float64},
    "items": {"ds": pl.Date, "item_id": pl.String, "title": pl.String, "category": pl.String,
              "available": pl.Boolean},
    "similar_items": {"ds": pl.Date, "item_id": pl.String, "rank": pl.Int32,
                      "similar_item_id": pl.String, "score": pl.Float64, "reason": pl.String,
                      "model_version": pl.String, "run_id": pl.String},
}


def run_tables(batch: RunBatch) -> dict[str, pl.DataFrame]:
    """The run's rows for each table it writes, with the run's columns filled in."""
    run = {"ds": pl.lit(batch.ds), "run_id": pl.lit(batch.run_id),
           "model_version": pl.lit(batch.model_version)}
    sources = {"recommendations": batch.recommendations, "popular_items": batch.popular,
               "model_metrics": batch.metrics, "items": batch.catalog,
               "similar_items": batch.similar_items}
    tables = {}
    for name, frame in sources.items():
        schema = TABLE_SCHEMAS[name]
        filled = frame.with_columns(**{c: e for c, e in run.items()
                                       if c in schema and c not in frame.columns})
        if "reason" in schema and "reason" not in filled.columns:
            filled = filled.with_columns(pl.lit(None, pl.String).alias("reason"))
        if "title" in schema:
            filled = filled.with_columns(*[pl.lit(None, pl.String).alias(c)
                                           for c in ("title", "category")
                                           if c not in filled.columns])
        tables[name] = filled.select(TABLE_COLUMNS[name]).cast(schema)
    return tables


def retention_cutoff(newest: date, retention_days: int) -> date | None:
    """The oldest ``ds`` kept when ``newest`` is the newest published day (None: keep all)."""
    return newest - timedelta(days=retention_days - 1) if retention_days > 0 else None
