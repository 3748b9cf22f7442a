"""Write-audit-publish on both warehouse backends: a DuckDB file and a real PostgreSQL server.

The same suite runs on each; the recovery tests kill a publishing process with SIGKILL at its
failpoints and check what consumers see afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipelines.core.errors import AuditError, WarehouseLocked
from pipelines.warehouse import open_warehouse
from tests.support.warehouse_batches import RULES, make_batch

D1, D2, D3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)
REPO = Path(__file__).resolve().parents[2]
CURRENT = "select * from recs.recommendations_current order by user_id, rank"
HISTORY = "select * from recs.recommendations order by ds, user_id, rank"


@pytest.fixture
def url(warehouse_url: str) -> str:
    return warehouse_url


def expected_rows(batch) -> pl.DataFrame:
    return batch.recommendations.with_columns(
        pl.lit(batch.ds).alias("ds"), pl.lit(batch.model_version).alias("model_version"),
        pl.lit(batch.run_id).alias("run_id"),
    ).select("ds", "user_id", "rank", "item_id", "score", "reason", "model_version", "run_id")


def current(wh) -> pl.DataFrame:
    return wh.query(CURRENT).cast({"rank": pl.Int32})


def test_publish_shows_the_run_in_the_current_view(url: str) -> None:
    wh = open_warehouse(url)
    batch = make_batch(D1, seed=1)
    assert wh.publish(batch, RULES) == batch.recommendations.height
    assert current(wh).equals(expected_rows(batch))
    popular = wh.query("select rank, item_id from recs.popular_current order by rank")
    assert popular["item_id"].to_list() == batch.popular["item_id"].to_list()
    items = wh.query("select item_id, title from recs.items_current order by item_id")
    assert items.height == batch.catalog.height and items["title"][0] == "Item 0"
    run = wh.query("select status, n_users, n_rows, model_version from recs.pipeline_runs")
    assert run.row(0) == ("success", 20, 200, "m1:ranker")
    similar = wh.query("select item_id, rank, similar_item_id, score, reason, model_version "
                       "from recs.similar_items_current order by item_id, rank")
    assert similar.cast({"rank": pl.Int32}).equals(batch.similar_items)


PUBLICATION = ("select ds, published_at, model_version, model, gate_verdict, gate_reason, "
               "run_id from recs.publication_current")


def test_publication_current_says_what_the_current_lists_are_and_when_they_came(
        url: str) -> None:
    wh = open_warehouse(url)
    wh.publish(make_batch(D1, seed=1), RULES)
    refused = replace(make_batch(D2, seed=2), model_version="m2:pop_7d",
                      finished_at=datetime(2026, 3, 3, 1, 30, tzinfo=UTC),
                      gate_verdict="refused", gate_reason="pop_7d surely better")
    wh.publish(refused, RULES)
    wh.record_run("run-failed", D3, "failed", None, datetime(2026, 3, 4, tzinfo=UTC), "boom")
    wh.publish(make_batch(D1, seed=3), RULES)  # a backfill of an older day
    rows = wh.query(PUBLICATION)
    assert rows.height == 1
    row = rows.row(0, named=True)
    assert row["published_at"] == datetime(2026, 3, 3, 1, 30, tzinfo=UTC)
    assert {k: v for k, v in row.items() if k != "published_at"} == {
        "ds": D2, "model_version": "m2:pop_7d", "model": "pop_7d", "gate_verdict": "refused",
        "gate_reason": "pop_7d surely better", "run_id": refused.run_id}
    assert set(wh.query("select distinct ds from recs.recommendations_current")["ds"]) == {D2}


def test_every_object_and_column_consumers_can_see_is_described(url: str) -> None:
    """COMMENT ON every table, view and column of the recs schema, on both backends."""
    wh = open_warehouse(url)
    wh.publish(make_batch(D1, seed=1), RULES)
    if wh.dialect == "duckdb":
        objects = wh.query(
            "select table_name as name, comment from duckdb_tables() where schema_name = 'recs' "
            "union all select view_name, comment from duckdb_views() where schema_name = 'recs'")
        columns = wh.query("select table_name || '.' || column_name as name, comment "
                           "from duckdb_columns() where schema_name = 'recs'")
    else:
        # Not a day's partition: those are the pipeline's own, attached and dropped by publish.
        relations = ("from pg_class c join pg_namespace n on n.oid = c.relnamespace {} "
                     "where n.nspname = 'recs' and c.relkind in ('r', 'p', 'v') "
                     "and not c.relispartition")
        objects = wh.query("select c.relname as name, obj_description(c.oid, 'pg_class') "
                           "as comment " + relations.format(""))
        columns = wh.query(
            "select c.relname || '.' || a.attname as name, col_description(c.oid, a.attnum) "
            "as comment " + relations.format("join pg_attribute a on a.attrelid = c.oid")
            + " and a.attnum > 0 and not a.attisdropped")
    assert objects.height >= 11 and columns.height >= 60
    for described in (objects, columns):
        missing = described.filter(pl.col("comment").fill_null("").str.strip_chars() == "")
        assert missing.is_empty(), f"no COMMENT ON for {missing['name'].to_list()}"


def test_the_dbt_sources_example_names_what_the_ddl_creates(url: str) -> None:
    import yaml

    wh = open_warehouse(url)
    wh.publish(make_batch(D1, seed=1), RULES)
    source, = yaml.safe_load((REPO / "sql" / "dbt" / "sources.yml").read_text())["sources"]
    assert source["schema"] == "recs"
    for table in source["tables"]:
        actual = wh.query(f"select * from recs.{table['name']} limit 0").columns
        assert [c["name"] for c in table["columns"]] == actual, table["name"]
    fresh = next(t for t in source["tables"] if "freshness" in t.get("config", {}))
    assert fresh["name"] == "publication_current"
    loaded_at = fresh["config"]["loaded_at_field"]
    kind = wh.query(f"select {loaded_at} from recs.{fresh['name']}").schema[loaded_at]
    assert isinstance(kind, pl.Datetime) and kind.time_zone is not None  # dbt compares to UTC
    assert {"warn_after", "error_after"} <= set(fresh["config"]["freshness"])


def test_rerun_of_a_ds_replaces_it(url: str) -> None:
    wh = open_warehouse(url)
    wh.publish(make_batch(D1, seed=1), RULES)
    again = make_batch(D1, seed=2, n_users=15)
    wh.publish(again, RULES)
    assert current(wh).equals(expected_rows(again))
    assert wh.query("select count(*) as n from recs.recommendations")["n"][0] == 150


def test_backfill_writes_history_but_never_moves_the_current_view_back(url: str) -> None:
    wh = open_warehouse(url)
    newest = make_batch(D3, seed=3)
    wh.publish(newest, RULES)
    wh.publish(make_batch(D1, seed=1), RULES)
    assert current(wh).equals(expected_rows(newest))
    days = wh.query("select distinct ds from recs.recommendations_history order by ds")
    assert days["ds"].to_list() == [D1, D3]


def test_retention_drops_days_past_the_window(url: str) -> None:
    wh = open_warehouse(url)
    rules = replace(RULES, retention_days=2)
    for offset in range(4):
        wh.publish(make_batch(D1 + timedelta(days=offset), seed=offset), rules)
    days = wh.query("select distinct ds from recs.recommendations order by ds")["ds"].to_list()
    assert days == [D1 + timedelta(days=2), D1 + timedelta(days=3)]
    popular = wh.query("select distinct ds from recs.popular_items order by ds")["ds"].to_list()
    assert popular == days
    # metrics and run records outlive the lists: the quality gate reads past metrics
    assert wh.query("select count(distinct ds) as n from recs.model_metrics")["n"][0] == 4
    if wh.dialect == "postgresql":  # whole partitions are dropped, not rows deleted
        parts = wh.query("select count(*) as n from pg_inherits "
                         "where inhparent = 'recs.recommendations'::regclass")
        assert parts["n"][0] == 2


def _broken(batch, how: str):
    recs = batch.recommendations
    first_user = pl.col("user_id") == "u0000"
    seen_item = batch.seen.filter(pl.col("user_id") == "u0000")["item_id"][0]
    edits = {
        "seen item": recs.with_columns(
            pl.when(first_user & (pl.col("rank") == 1)).then(pl.lit(seen_item))
            .otherwise(pl.col("item_id")).alias("item_id")),
        "unavailable item": recs.with_columns(
            pl.when(first_user & (pl.col("rank") == 1)).then(pl.lit("i049"))
            .otherwise(pl.col("item_id")).alias("item_id")),
        "unknown item": recs.with_columns(
            pl.when(first_user & (pl.col("rank") == 1)).then(pl.lit("nope"))
            .otherwise(pl.col("item_id")).alias("item_id")),
        "rank gap": recs.filter(~(first_user & (pl.col("rank") == 2))),
        "rising score": recs.with_columns(
            pl.when(first_user & (pl.col("rank") == 3)).then(99.0)
            .otherwise(pl.col("score")).alias("score")),
        "duplicate item": recs.with_columns(
            pl.when(first_user & (pl.col("rank") == 2))
            .then(pl.col("item_id").shift(1)).otherwise(pl.col("item_id")).alias("item_id")),
        "too many": pl.concat([recs, recs.filter(first_user & (pl.col("rank") == 10))
                               .with_columns(pl.lit(11, pl.Int32).alias("rank"),
                                             pl.lit("i048").alias("item_id"),
                                             pl.lit(0.0).alias("score"))]),
        "low coverage": recs.filter(pl.col("user_id") < "u0005"),
        "nan score": recs.with_columns(
            pl.when(first_user).then(float("nan")).otherwise(pl.col("score")).alias("score")),
    }
    similar = batch.similar_items
    first_item = pl.col("item_id") == "i000"
    similar_edits = {
        "similar to itself": similar.with_columns(
            pl.when(first_item & (pl.col("rank") == 1)).then(pl.col("item_id"))
            .otherwise(pl.col("similar_item_id")).alias("similar_item_id")),
        "similar unavailable": similar.with_columns(
            pl.when(first_item & (pl.col("rank") == 1)).then(pl.lit("i049"))
            .otherwise(pl.col("similar_item_id")).alias("similar_item_id")),
        "similar rank gap": similar.filter(~(first_item & (pl.col("rank") == 2))),
    }
    if how in similar_edits:
        return replace(batch, similar_items=similar_edits[how])
    return replace(batch, recommendations=edits[how])


@pytest.mark.parametrize("how", ["seen item", "unavailable item", "unknown item", "rank gap",
                                 "rising score", "duplicate item", "too many", "low coverage",
                                 "nan score", "similar to itself", "similar unavailable",
                                 "similar rank gap"])
def test_audit_refuses_a_broken_run_and_leaves_consumers_alone(url: str, how: str) -> None:
    wh = open_warehouse(url)
    good = make_batch(D1, seed=1)
    wh.publish(good, RULES)
    with pytest.raises(AuditError):
        wh.publish(_broken(make_batch(D2, seed=2), how), RULES)
    assert current(wh).equals(expected_rows(good))


def test_run_records_and_metrics_round_trip(url: str) -> None:
    wh = open_warehouse(url)
    wh.record_dq("r1", D1, [{"dataset": "events", "expectation": "not_null", "success": True,
                             "unexpected_count": 0, "details": "{}"}])
    wh.record_run("r1", D1, "failed", None, None, "validate failed: boom")
    assert wh.query("select status, message from recs.pipeline_runs").row(0) == (
        "failed", "validate failed: boom")
    assert wh.query("select expectation from recs.dq_results")["expectation"].to_list() == [
        "not_null"]
    assert wh.published_lift(D2, "lift_ndcg", 10) is None
    wh.publish(make_batch(D1, seed=5), RULES)
    assert wh.published_lift(D2, "lift_ndcg", 10) == pytest.approx(2.5)
    assert wh.published_lift(D1, "lift_ndcg", 10) is None  # only runs before the ds
    # A run that published a baseline says nothing about the ranker's lift.
    baseline = replace(make_batch(D2, seed=7), model_version="m7:pop_7d")
    wh.publish(baseline, RULES)
    assert wh.published_lift(D2 + timedelta(days=1), "lift_ndcg", 10) == pytest.approx(2.5)


# --- recovery: SIGKILL at each failpoint ------------------------------------------------------

def _publish_in_process(url: str, ds: date, seed: int, failpoint: str | None,
                        marker: Path, users: int = 20) -> subprocess.Popen:
    env = dict(os.environ, RECS_FAILPOINTS=failpoint or "", RECS_FAILPOINT_FILE=str(marker))
    return subprocess.Popen([sys.executable, "-m", "tests.support.warehouse_batches", url,
                             ds.isoformat(), str(seed), str(users)], cwd=REPO, env=env)


def _kill_at(url: str, ds: date, seed: int, point: str, marker: Path) -> None:
    proc = _publish_in_process(url, ds, seed, point, marker, users=3000)
    deadline = time.monotonic() + 120
    while not (marker.exists() and marker.read_text() == point):
        assert proc.poll() is None, f"publisher exited ({proc.returncode}) before {point}"
        assert time.monotonic() < deadline, f"publisher never reached {point}"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    marker.unlink()


def _another_warehouse(url: str, request: pytest.FixtureRequest) -> str:
    """An empty warehouse of the same backend, for a clean run to compare with."""
    if url.startswith("duckdb"):
        return url.replace("warehouse.duckdb", "clean.duckdb")
    server = request.getfixturevalue("postgres_server")
    return server.create_database(url.rsplit("/", 1)[1] + "_clean")


@pytest.mark.slow
@pytest.mark.parametrize("point", ["publish:loading", "publish:staged", "publish:swap"])
def test_sigkill_during_publish_keeps_the_previous_run_and_a_rerun_converges(
        url: str, point: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    wh = open_warehouse(url)
    wh.publish(make_batch(D1, seed=1), RULES)
    before = current(wh)
    _kill_at(url, D2, 2, point, tmp_path / "marker")
    assert current(wh).equals(before)
    runs = wh.query("select ds, status from recs.pipeline_runs order by ds")
    assert runs.rows() == [(D1, "success")]

    rerun = _publish_in_process(url, D2, 2, None, tmp_path / "marker", users=3000)
    assert rerun.wait(timeout=120) == 0
    clean = open_warehouse(_another_warehouse(url, request))
    clean.publish(make_batch(D1, seed=1), RULES)
    clean.publish(make_batch(D2, seed=2, n_users=3000), RULES)
    assert wh.query(HISTORY).equals(clean.query(HISTORY))
    assert current(wh).equals(current(clean))
    leftovers = wh.query("select table_name from information_schema.tables "
                         "where table_schema = 'recs_staging' and table_name <> 'ddl_state'")
    assert leftovers.is_empty()


@pytest.mark.slow
def test_postgres_reader_sees_the_old_run_or_the_new_never_a_mix(postgres_url: str,
                                                                  tmp_path: Path) -> None:
    import psycopg

    wh = open_warehouse(postgres_url)
    wh.publish(make_batch(D1, seed=1, n_users=2000), RULES)
    old = (20000, "run-2026-03-01-1")
    new = (25000, "run-2026-03-02-2")
    seen: list[tuple] = []
    stop = threading.Event()

    def read() -> None:
        with psycopg.connect(postgres_url, autocommit=True) as con:
            while not stop.is_set():
                seen.append(con.execute(
                    "select count(*), min(run_id), max(run_id) from recs.recommendations_current"
                ).fetchall()[0])

    reader = threading.Thread(target=read)
    reader.start()
    try:
        time.sleep(0.2)
        publisher = _publish_in_process(postgres_url, D2, 2, None, tmp_path / "m", users=2500)
        assert publisher.wait(timeout=120) == 0
        time.sleep(0.2)
    finally:
        stop.set()
        reader.join()
    observed = {(n, lo) for n, lo, hi in seen if lo == hi}
    assert all(lo == hi for _, lo, hi in seen), "a read mixed two runs"
    assert observed == {old, new}, observed
    assert seen[-1][:2] == new


@pytest.mark.slow
def test_postgres_readers_under_load_see_no_error_no_mix_and_no_gap(postgres_url: str) -> None:
    """The readers-under-load benchmark, small: 8 readers during a publish of 20,000 rows."""
    from benchmarks.readers import bench_readers

    alone, loaded = bench_readers(20_000, 8, url=postgres_url)
    assert loaded["reads"] > 100
    assert (loaded["errors"], loaded["mixed_ds"], loaded["empty"]) == (0, 0, 0)
    assert loaded["current_ds"] == "2026-10-03"
    assert alone["seconds"] > 0 and loaded["p99_ms"] >= loaded["p50_ms"] > 0


def test_postgres_reader_role_can_read_the_views_and_nothing_else(postgres_url: str) -> None:
    import psycopg

    wh = open_warehouse(postgres_url)
    wh.publish(make_batch(D1, seed=1), RULES)
    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute("set role recs_reader")
        for view in ("recommendations_current", "recommendations_history", "popular_current",
                     "items_current", "publication_current", "similar_items_current"):
            assert con.execute(f"select count(*) from recs.{view}").fetchall()[0][0] > 0
        refused = [
            "select count(*) from recs.recommendations",
            "select count(*) from recs.pipeline_runs",
            "insert into recs.recommendations_history (ds, user_id, rank, item_id, score, "
            "model_version, run_id) values ('2026-03-01', 'x', 1, 'i', 1, 'm', 'r')",
            "insert into recs.recommendations (ds, user_id, rank, item_id, score, "
            "model_version, run_id) values ('2026-03-01', 'x', 1, 'i', 1, 'm', 'r')",
            "update recs.recommendations set score = 0",
            "delete from recs.popular_items",
            "drop table recs.recommendations cascade",
            "drop view recs.recommendations_current",
            "create table recs.mine (x int)",
            "truncate recs.items",
        ]
        for statement in refused:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                con.execute(statement)


def test_duckdb_readers_wait_for_the_publish_lock(tmp_path: Path) -> None:
    """A read-only connection opened while the writer holds the file waits, then reads."""
    from pipelines.warehouse.duckdb_backend import DuckDBWarehouse

    path = str(tmp_path / "w.duckdb")
    wh = DuckDBWarehouse(path)
    wh.publish(make_batch(D1, seed=1), RULES)
    writer = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({path!r}); "
         "print('locked', flush=True); time.sleep(1.5); c.close()"],
        stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "locked"
    started = time.monotonic()
    assert DuckDBWarehouse(path, lock_timeout_s=30).query(
        "select count(*) as n from recs.recommendations_current")["n"][0] == 200
    assert time.monotonic() - started > 0.5
    writer.wait()


def test_a_lock_held_past_the_wait_is_a_retryable_error(tmp_path: Path) -> None:
    """A writer that keeps the file longer than the wait: the reader gives up with an error
    Airflow retries (the lock passes), naming the file."""
    from pipelines.warehouse.duckdb_backend import DuckDBWarehouse

    path = str(tmp_path / "w.duckdb")
    DuckDBWarehouse(path).publish(make_batch(D1, seed=1), RULES)
    writer = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({path!r}); "
         "print('locked', flush=True); time.sleep(5); c.close()"],
        stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "locked"
    with pytest.raises(WarehouseLocked, match="w.duckdb stayed locked") as raised:
        DuckDBWarehouse(path, lock_timeout_s=0.5).query("select 1 as one")
    assert raised.value.retryable
    writer.kill()
    writer.wait()



@pytest.mark.parametrize("example", sorted(p.name for p in (REPO / "sql" / "consumers").glob(
    "*.sql")))
def test_consumer_examples_run_on_both_backends_with_reader_rights(url: str,
                                                                    example: str) -> None:
    wh = open_warehouse(url)
    wh.publish(make_batch(D1, seed=1), RULES)
    wh.publish(make_batch(D2, seed=2), RULES)
    text = (REPO / "sql" / "consumers" / example).read_text()
    if wh.dialect == "duckdb":
        rows = wh.query(text)
    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as con:
            con.execute("set role recs_reader")
            rows = con.execute(text).fetchall()
    assert len(rows) > 0
