"""DAG integrity: it parses without errors, cheaply, and is wired as documented."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ["torch", "transformers", "pyspark", "dask", "implicit", "polars", "duckdb", "jobs",
         "pipelines"]
# The deadline callback is named by its import path, which Airflow checks at parse time; the
# module has only standard-library imports at the top.
PARSE_TIME_MODULES = ["jobs", "jobs.airflow_tasks"]

PARSE = """
import json, sys, time
t0 = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
dag = bag.dags.get("recs_nightly")
print(json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dags": sorted(bag.dags),
    "tags": sorted(dag.tags) if dag else [],
    "tasks": {t.task_id: {"retries": t.retries, "upstream": sorted(t.upstream_task_ids),
                          "pool": t.pool, "depends_on_past": t.depends_on_past,
                          "timeout": t.execution_timeout.total_seconds()
                          if t.execution_timeout else None,
                          "mode": getattr(t, "mode", None),
                          "outlets": [getattr(a, "name", None) for a in t.outlets]}
              for t in dag.tasks} if dag else {},
    "schedule": dag.timetable.expression if dag else None,
    "deadline": [{"reference": type(d.reference).__name__, "hours": d.interval.total_seconds()
                  / 3600, "callback": d.callback.path} for d in dag.deadline or []]
                if dag else [],
    "params": sorted(dag.params.keys()) if dag else [],
    "heavy": sorted(m for m in sys.modules
                    if m.split(".")[0] in HEAVY and m not in PARSE_TIME_MODULES),
    "seconds": time.perf_counter() - t0,
}))
"""


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("airflow_home")
    env = {"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "PATH": "/usr/bin:/bin"}
    code = f"HEAVY = {HEAVY!r}\nPARSE_TIME_MODULES = {PARSE_TIME_MODULES!r}\n{PARSE}"
    out = subprocess.run([sys.executable, "-c", code, str(REPO / "dags")], env=env,
                         capture_output=True, text=True, check=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_no_import_errors(parsed: dict) -> None:
    assert parsed["errors"] == {}
    assert parsed["dags"] == ["recs_nightly"]


def test_tags_retries_and_params(parsed: dict) -> None:
    assert "recs" in parsed["tags"]
    # the sensor retries by rescheduling itself until its timeout; a retry after that would
    # only wait another six hours
    assert all(task["retries"] >= 1 for name, task in parsed["tasks"].items()
               if name != "wait_for_raw")
    assert {"engine", "device", "trainer", "top_n", "shards", "force_publish",
            "finetune"} <= set(parsed["params"])


def test_one_task_per_step_in_order(parsed: dict) -> None:
    tasks = parsed["tasks"]
    assert set(tasks) == {"wait_for_raw", "validate", "aggregate", "finetune", "embed", "train",
                          "evaluate", "shards", "precompute", "publish"}
    assert tasks["validate"]["upstream"] == ["wait_for_raw"]
    assert tasks["aggregate"]["upstream"] == ["validate"]
    # a fine-tuned encoder registered tonight is embedded with tonight, for evaluate to judge
    assert tasks["finetune"]["upstream"] == ["aggregate"]
    assert tasks["embed"]["upstream"] == ["finetune"]
    assert tasks["train"]["upstream"] == ["embed"]
    # precompute scores the model the evaluation chose
    assert tasks["evaluate"]["upstream"] == ["train"]
    assert tasks["shards"]["upstream"] == ["evaluate"]
    # mapped over the shard numbers, one task instance per shard
    assert tasks["precompute"]["upstream"] == ["shards"]
    assert tasks["publish"]["upstream"] == ["precompute"]


def test_parsing_imports_nothing_heavy(parsed: dict) -> None:
    assert parsed["heavy"] == []
    # Airflow itself dominates; the DAG file must not add seconds of its own.
    assert parsed["seconds"] < 30


def test_operations_settings(parsed: dict) -> None:
    tasks = parsed["tasks"]
    assert parsed["schedule"] == "0 0 * * *"
    # the sensor frees its worker slot between pokes and gives up with its own timeout
    assert tasks["wait_for_raw"]["mode"] == "reschedule"
    assert all(t["timeout"] for t in tasks.values())
    # GPU work never overlaps: every task that may use the GPU takes a slot of one pool
    assert {name for name, t in tasks.items() if t["pool"] == "gpu"} == {
        "finetune", "embed", "train", "precompute"}
    # state carried across days: deduplication against accepted events (validate), the
    # interest memory (embed) and the gate's comparison with the previous publish; a
    # backfill therefore runs oldest first
    assert {name for name, t in tasks.items() if t["depends_on_past"]} == {
        "validate", "embed", "publish"}
    assert tasks["publish"]["outlets"] == ["recs_recommendations"]
    assert parsed["deadline"] == [{"reference": "DagRunQueuedAtDeadline", "hours": 8.0,
                                   "callback": "jobs.airflow_tasks.publish_late"}]
