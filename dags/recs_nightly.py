"""
### recs_nightly

Turns the day's raw interaction logs into precomputed top-N recommendations in the warehouse
(`recs.recommendations_current`). One task per step; each is a one-line call into `jobs/`.

validate → aggregate → embed → train → precompute (one mapped task per user shard) → publish,
with evaluate (on the held-out days before `ds`) feeding publish's quality gate. Every task
works on the run's logical date `ds` only, so a rerun or a backfill of a date replaces that
date's results.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, dag, task


def _record_failure(context):
    from jobs.airflow_tasks import on_failure
    on_failure(context)


DEFAULT_ARGS = {
    "owner": "recs",
    "retries": 2,
    "retry_delay": timedelta(minutes=5),
    "retry_exponential_backoff": True,
    "execution_timeout": timedelta(hours=2),
    "on_failure_callback": _record_failure,
}


@dag(
    dag_id="recs_nightly",
    # The 03:00 UTC run covers the day that just ended: ds = the data interval's start.
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["recs", "nightly"],
    doc_md=__doc__,
    params={
        # Unset params (null) leave the worker's RECS_* environment and config file in charge.
        "engine": Param(None, type=["null", "string"], enum=[None, "polars", "spark", "dask"],
                        description="feature aggregation engine"),
        "device": Param(None, type=["null", "string"], enum=[None, "auto", "cpu", "cuda"],
                        description="device for embedding"),
        "trainer": Param(None, type=["null", "string"], enum=[None, "implicit", "spark_als"],
                         description="ALS trainer: implicit in process, or Spark MLlib"),
        "top_n": Param(None, type=["null", "integer"], minimum=1, maximum=1000,
                       description="recommendations per user"),
        "shards": Param(None, type=["null", "integer"], minimum=1, maximum=256,
                        description="user shards for precompute, one mapped task each"),
        "accept_anomalies": Param(False, type="boolean",
                                  description="take a day whose quarantine share or volume "
                                              "breaks its data-quality rule"),
        "force_publish": Param(False, type="boolean",
                               description="publish even if the quality gate refuses the model"),
    },
)
def recs_nightly():
    @task
    def validate(**context):
        from jobs.airflow_tasks import run
        return run("validate", context)

    @task
    def aggregate(**context):
        from jobs.airflow_tasks import run
        return run("aggregate", context)

    @task
    def embed(**context):
        from jobs.airflow_tasks import run
        return run("embed", context)

    @task
    def train(**context):
        from jobs.airflow_tasks import run
        return run("train", context)

    @task
    def evaluate(**context):
        from jobs.airflow_tasks import run
        return run("evaluate", context)

    @task
    def shards(**context) -> list[int]:
        from jobs.airflow_tasks import shard_numbers
        return shard_numbers(context)

    @task
    def precompute(shard: int, **context):
        from jobs.airflow_tasks import run
        return run("precompute", context, shard=shard)

    @task
    def publish(**context):
        from jobs.airflow_tasks import run
        return run("publish", context)

    checked = validate()
    features = aggregate()
    # One mapped precompute task per user shard; publish waits for all of them.
    planned = shards()
    scored = precompute.expand(shard=planned)
    # The hybrid needs the day's item vectors and interest memory.
    checked >> features >> embed() >> train() >> planned
    [scored, checked >> evaluate()] >> publish()


recs_nightly()
