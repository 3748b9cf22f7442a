#!/usr/bin/env bash
# One-off setup before the Airflow services start: migrate the metadata database and create
# the `gpu` pool the DAG's embed, train and precompute tasks take a slot of.
set -euo pipefail
airflow db migrate
airflow pools set gpu "${RECS_GPU_SLOTS:-1}" "GPU tasks: one slot per GPU"
