"""``recs demo``: synthetic data, the nightly flow for the last few days, and a short report."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from jobs.backfill import backfill
from jobs.console import console, progress_bars
from jobs.context import RunContext, default_run_id
from jobs.flow import run_flow
from jobs.rawdata import write_days
from pipelines.core import catalog as cat
from pipelines.core.settings import Settings, load_settings, replace
from pipelines.datasets.generate import GenerateSpec, generate

DEMO_SPEC = GenerateSpec(n_users=600, n_items=400, n_days=35, start=date(2026, 10, 1),
                         events_per_day=1500, seed=7)
REPO = Path(__file__).resolve().parents[2]


def demo_settings(workdir: Path) -> Settings:
    base = load_settings()
    return replace(
        base,
        raw_root=str(workdir / "raw"),
        lake_root=str(workdir / "lake"),
        warehouse=f"duckdb:///{workdir / 'warehouse.duckdb'}",
    )


def airflow_env(settings: Settings) -> dict[str, str]:
    """The environment of Airflow and its workers on the demo data."""
    env = dict(os.environ)
    env.setdefault("AIRFLOW_HOME", str(REPO / ".airflow"))
    env.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    env.update(RECS_RAW_ROOT=settings.raw_root, RECS_LAKE_ROOT=settings.lake_root,
               RECS_WAREHOUSE=settings.warehouse, RECS_ENGINE=settings.engine,
               RECS_DEVICE=settings.device)
    return env


def run_airflow_day(ds: date, env: dict[str, str]) -> None:
    """One DAG run through the real Airflow CLI (``airflow dags test``)."""
    airflow = str(Path(sys.executable).with_name("airflow"))
    log_path = Path(env["AIRFLOW_HOME"]) / "logs" / f"dags-test-{ds}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as out:
        result = subprocess.run([airflow, "dags", "test", "recs_nightly", ds.isoformat()],
                                env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"airflow dags test recs_nightly {ds} failed; log: {log_path}")
    console.info(f"airflow dags test recs_nightly {ds}: success (log: {log_path})")


LAST_DAY = DEMO_SPEC.start + timedelta(days=DEMO_SPEC.n_days - 1)


def prepare_demo(workdir: Path, nights: int) -> tuple[Settings, list[date]]:
    """The demo data under ``workdir`` (generated once) and its history validated up to its
    last ``nights`` days: the settings and those nights, oldest first."""
    settings = demo_settings(workdir)
    nightly = [LAST_DAY - timedelta(days=i) for i in reversed(range(nights))]
    if not (workdir / "raw" / "events").exists():
        n_days, n_events = write_days(settings.raw_root, generate(DEMO_SPEC), "parquet")
        console.info(f"generated {n_days} days, {n_events:,} raw events under "
                     f"{settings.raw_root}")
    # The history before the nightly runs only needs validating: the nightly runs aggregate it.
    with progress_bars() as progress:
        backfill(settings, None, nightly[0] - timedelta(days=1), validate_only=True,
                 progress=progress)
    return settings, nightly


def run_demo(workdir: Path, days: int = 3, use_airflow: bool = False) -> int:
    settings, nightly = prepare_demo(workdir.resolve(), days)
    if use_airflow:
        # `airflow dags test` of a DAG with a deadline alert fails after a successful run
        # (apache/airflow#73428); the scheduler handles it, so only these runs go without.
        env = {**airflow_env(settings), "RECS_PUBLISH_DEADLINE_HOURS": "0"}
        airflow = str(Path(sys.executable).with_name("airflow"))
        subprocess.run([airflow, "db", "migrate"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for ds in nightly:
            run_airflow_day(ds, env)
    else:
        for ds in nightly:
            run_flow(RunContext(settings, ds, default_run_id(ds)))
    print(report(settings, nightly[-1]))
    return 0


def _ranker(train: dict) -> str:
    info = train.get("ranker")
    if not info:
        return "nothing (too little history)"
    return (f"{info['users']} users' candidates over {info['splits']} training days "
            f"({info['positives']} positives)")


def _table(frame: pl.DataFrame) -> str:
    with pl.Config(tbl_rows=40, tbl_cols=12, fmt_str_lengths=60, tbl_hide_dataframe_shape=True,
                   tbl_hide_column_data_types=True):
        return str(frame)


def report(settings: Settings, ds: date) -> str:
    """What a person wants to see after a run: the runs, one user's history and list, metrics."""
    ctx = RunContext(settings, ds, default_run_id(ds))
    wh = ctx.warehouse()
    runs = wh.query("select run_id, ds, status, model_version, n_users, n_rows, "
                    "round(extract(epoch from finished_at - started_at), 1) as seconds "
                    "from recs.pipeline_runs order by ds")
    current = wh.query("select user_id, count(*) as n from recs.recommendations_current "
                       "group by user_id order by n desc, user_id limit 1")
    user = current["user_id"][0]
    catalog = ctx.catalog().select("item_id", "title")
    history = (
        ctx.clean_events(14).filter(pl.col("user_id") == user)
        .sort("ts", descending=True).head(8)
        .join(catalog, on="item_id", how="left")
        .select(pl.col("ts").dt.strftime("%Y-%m-%d %H:%M"), "event_type", "title", "value")
    )
    top = (
        wh.query("select rank, item_id, round(score, 4) as score, reason "
                 "from recs.recommendations_current where user_id = ? order by rank limit 10",
                 [user])
        .join(catalog, on="item_id", how="left")
        .select("rank", "title", "score", "reason")
    )
    metrics = wh.query(
        "select model, metric, k, round(value, 4) as value from recs.model_metrics "
        "where ds = ? and k = 10 and metric in ('recall', 'ndcg', 'map', 'coverage', "
        "'cold_recall') order by metric, model", [ds])
    wide = metrics.pivot(on="model", index=["metric", "k"], values="value")
    summaries = {
        name: ctx.lake.read_dict(cat.SUMMARIES[name], ds=ds)
        for name in ("validate", "embed", "train", "publish")
    }
    v, e = summaries["validate"]["events"], summaries["embed"]
    t, p = summaries["train"], summaries["publish"]
    path = settings.warehouse[len("duckdb:///"):]
    return "\n".join([
        "",
        "== pipeline runs (recs.pipeline_runs)", _table(runs),
        f"== {ds}: {v['raw']} raw events -> {v['clean']} clean, {v['quarantined']} "
        f"quarantined, {v['duplicates']} duplicates; texts embedded "
        f"{e['items']['embedded'] + e['users']['embedded']}, reused "
        f"{e['items']['reused'] + e['users']['reused']}",
        f"== quarantine reasons: {v['reasons']}",
        f"== data quality report (Great Expectations Data Docs): "
        f"{summaries['validate']['data_docs']}",
        f"== user {user}: recent history", _table(history),
        f"== user {user}: top 10 (recs.recommendations_current)", _table(top),
        f"== model {t['model_version']}: generators on {t['users']} users x {t['items']} "
        f"items ({t['cold_items']} cold, scored by content); "
        f"ranker trained on {_ranker(t)}",
        "== holdout metrics at k=10 for this ds (recs.model_metrics)", _table(wide),
        f"== published: {p['model_version']}; {p['gate']['reason']}",
        f"== run report: {p['report']}",
        "== query it yourself",
        "  .venv/bin/python -c \"import duckdb; print(duckdb.connect("
        f"'{path}', read_only=True).sql(\\\"select * from recs.recommendations_current "
        f"where user_id = '{user}' order by rank limit 10\\\"))\"",
        "  (more examples in sql/consumers/)",
        "",
    ])
