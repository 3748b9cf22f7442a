"""DAG integrity: it parses without errors, cheaply, and is wired as documented."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ["torch", "transformers", "pyspark", "dask", "implicit", "polars", "duckdb", "jobs",
         "pipelines"]

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
    "tasks": {t.task_id: {"retries": t.retries, "upstream": sorted(t.upstream_task_ids)}
              for t in dag.tasks} if dag else {},
    "params": sorted(dag.params.keys()) if dag else [],
    "heavy": sorted(m for m in sys.modules if m.split(".")[0] in HEAVY),
    "seconds": time.perf_counter() - t0,
}))
"""


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("airflow_home")
    env = {"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "PATH": "/usr/bin:/bin"}
    code = f"HEAVY = {HEAVY!r}\n{PARSE}"
    out = subprocess.run([sys.executable, "-c", code, str(REPO / "dags")], env=env,
                         capture_output=True, text=True, check=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_no_import_errors(parsed: dict) -> None:
    assert parsed["errors"] == {}
    assert parsed["dags"] == ["recs_nightly"]


def test_tags_retries_and_params(parsed: dict) -> None:
    assert "recs" in parsed["tags"]
    assert all(task["retries"] >= 1 for task in parsed["tasks"].values())
    assert {"engine", "device", "trainer", "top_n", "shards", "force_publish"} <= set(
        parsed["params"])


def test_one_task_per_step_in_order(parsed: dict) -> None:
    tasks = parsed["tasks"]
    assert set(tasks) == {"validate", "aggregate", "embed", "train", "evaluate", "shards",
                          "precompute", "publish"}
    assert tasks["aggregate"]["upstream"] == ["validate"]
    assert tasks["train"]["upstream"] == ["embed"]
    assert tasks["shards"]["upstream"] == ["train"]
    # mapped over the shard numbers, one task instance per shard
    assert tasks["precompute"]["upstream"] == ["shards"]
    assert set(tasks["publish"]["upstream"]) == {"evaluate", "precompute"}


def test_parsing_imports_nothing_heavy(parsed: dict) -> None:
    assert parsed["heavy"] == []
    # Airflow itself dominates; the DAG file must not add seconds of its own.
    assert parsed["seconds"] < 30
