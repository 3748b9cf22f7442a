"""
### recs_nightly

Turns the day's raw interaction logs into precomputed top-N recommendations in the warehouse
(`recs.recommendations_current`). Each task is a one-line call into `jobs/`.

wait_for_raw → validate → aggregate → finetune → embed → train → evaluate → precompute (one
mapped task per user shard) → publish. `finetune` trains a new encoder version on its cadence
(weekly; the `finetune` param forces it) and is a no-op on other days. `evaluate` scores the
ranker and every baseline on the held-out days before `ds` and decides which model's lists go
out (and whether a new encoder is adopted); `precompute` scores that model. Every task works
on the run's `ds` only, so a rerun or a backfill of a date replaces that date's results.
Each task runs `jobs/tasks/<task>.py`, which calls its stage in `pipelines/<stage>/`.

- **Schedule**: daily at 00:00 UTC (`RECS_SCHEDULE`); the run for `ds` starts once that day
  has closed, and `wait_for_raw` waits up to 6 h for `raw/events/ds=<ds>/` to land.
- **First day**: `RECS_START_DATE` (default 1995-01-01). A run or backfill of an earlier day
  fails in `wait_for_raw`, naming the setting; catchup is off, so nothing old is scheduled.
  `RECS_END_DATE` (unset: none) is the last: nothing after it is scheduled, and a run of a
  later day fails the same way (`make airflow` sets it to the demo data's last day).
- **Order**: `validate` (deduplication against earlier days), `embed` (user-interest memory)
  and `publish` (the gate compares with the previous day) wait for the same task of the
  previous day (`depends_on_past`), so a backfill goes oldest first.
- **Pool**: `finetune`, `embed`, `train` and `precompute` take a slot of the `gpu` pool (one
  per GPU).
- **Deadline**: a run not done 8 h after it was queued (`RECS_PUBLISH_DEADLINE_HOURS`) is
  marked `late` in `recs.pipeline_runs`.
- **Output**: `publish` updates the asset `recs_recommendations`.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import (
    Asset,
    AsyncCallback,
    CronDataIntervalTimetable,
    DeadlineAlert,
    DeadlineReference,
    Param,
    dag,
    task,
)

# Downstream DAGs schedule on this: `schedule=[Asset("recs_recommendations")]`.
RECOMMENDATIONS = Asset(name="recs_recommendations", uri="recs://warehouse/recommendations")
GPU_POOL = "gpu"
RAW_WAIT = timedelta(hours=6)
# 0 turns the alert off: `airflow dags test` fails a DAG that has one after its run succeeds
# (apache/airflow#73428), so `make demo` runs without it.
PUBLISH_DEADLINE = timedelta(hours=float(os.environ.get("RECS_PUBLISH_DEADLINE_HOURS", "8")))
# The last day the DAG runs for (RECS_END_DATE, unset: none): the last logical date.
_END = (pendulum.parse(os.environ["RECS_END_DATE"], tz="UTC")
        if os.environ.get("RECS_END_DATE") else None)


def _record_failure(context):
    from jobs.airflow_tasks import on_failure
    on_failure(context)


DEFAULT_ARGS = {
    "owner": "recs",
    "retries": 2,
    "retry_delay": timedelta(minutes=5),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": timedelta(hours=2),
    "on_failure_callback": _record_failure,
}


@dag(
    dag_id="recs_nightly",
    # ds = the data interval's start: the run at 00:00 on day D+1 processes day D.
    schedule=CronDataIntervalTimetable(os.environ.get("RECS_SCHEDULE", "0 0 * * *"),
                                       timezone="UTC"),
    # Every day is runnable as far as Airflow knows (catchup is off, so nothing old is
    # scheduled): the first day the pipeline runs for is RECS_START_DATE, which wait_for_raw
    # enforces, so a run of an earlier day fails loudly instead of succeeding with no task.
    start_date=pendulum.datetime(1970, 1, 1, tz="UTC"),
    end_date=_END,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["recs", "nightly"],
    doc_md=__doc__,
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=PUBLISH_DEADLINE,
        callback=AsyncCallback("jobs.airflow_tasks.publish_late",
                               kwargs={"hours": PUBLISH_DEADLINE.total_seconds() / 3600}),
    ) if PUBLISH_DEADLINE else None,
    params={
        # Unset params (null) leave the worker's RECS_* environment and config file in charge.
        "engine": Param(None, type=["null", "string"], enum=[None, "polars", "spark", "dask"],
                        description="feature aggregation engine"),
        "device": Param(None, type=["null", "string"], enum=[None, "auto", "cpu", "cuda"],
                        description="device for embedding, ALS and scoring"),
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
        "finetune": Param(False, type="boolean",
                          description="fine-tune the encoder tonight, not only on its cadence"),
    },
)
def recs_nightly():
    @task.sensor(mode="reschedule", poke_interval=timedelta(minutes=10), timeout=RAW_WAIT,
                 exponential_backoff=False, retries=0)
    def wait_for_raw(**context) -> bool:
        from jobs.airflow_tasks import check_run_dates, raw_landed
        check_run_dates(context)
        return raw_landed(context, RAW_WAIT)

    @task(depends_on_past=True, execution_timeout=timedelta(hours=1))
    def validate(**context):
        from jobs.airflow_tasks import run
        return run("validate", context)

    @task(execution_timeout=timedelta(hours=2))
    def aggregate(**context):
        from jobs.airflow_tasks import run
        return run("aggregate", context)

    @task(pool=GPU_POOL, execution_timeout=timedelta(hours=3))
    def finetune(**context):
        from jobs.airflow_tasks import run
        return run("finetune", context)

    @task(pool=GPU_POOL, depends_on_past=True, execution_timeout=timedelta(hours=3))
    def embed(**context):
        from jobs.airflow_tasks import run
        return run("embed", context)

    @task(pool=GPU_POOL, execution_timeout=timedelta(hours=3))
    def train(**context):
        from jobs.airflow_tasks import run
        return run("train", context)

    @task(execution_timeout=timedelta(hours=1))
    def evaluate(**context):
        from jobs.airflow_tasks import run
        return run("evaluate", context)

    @task(execution_timeout=timedelta(minutes=10))
    def shards(**context) -> list[int]:
        from jobs.airflow_tasks import shard_numbers
        return shard_numbers(context)

    @task(pool=GPU_POOL, execution_timeout=timedelta(hours=2))
    def precompute(shard: int, **context):
        from jobs.airflow_tasks import run
        return run("precompute", context, shard=shard)

    @task(outlets=[RECOMMENDATIONS], depends_on_past=True, execution_timeout=timedelta(hours=1))
    def publish(**context):
        from jobs.airflow_tasks import publish_asset
        return publish_asset(context, RECOMMENDATIONS)

    checked = wait_for_raw() >> validate()
    # One mapped precompute task per user shard; publish waits for all of them.
    planned = shards()
    scored = precompute.expand(shard=planned)
    # The models need the day's item vectors and interest memory; precompute scores the
    # model the evaluation chose.
    checked >> aggregate() >> finetune() >> embed() >> train() >> evaluate() >> planned
    scored >> publish()


recs_nightly()
