#!/usr/bin/env bash
# First start of the PostgreSQL container: one database for Airflow's metadata, one for the
# warehouse, each with its own login. Passwords come from the env file, never from here.
set -euo pipefail
: "${AIRFLOW_DB_PASSWORD:?set AIRFLOW_DB_PASSWORD in docker/.env}"
: "${RECS_DB_PASSWORD:?set RECS_DB_PASSWORD in docker/.env}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v airflow_pw="$AIRFLOW_DB_PASSWORD" -v recs_pw="$RECS_DB_PASSWORD" <<'SQL'
create role airflow login password :'airflow_pw';
create database airflow owner airflow;
-- the pipeline creates the recs schemas and the recs_reader role on its first publish
create role recs login createrole password :'recs_pw';
create database warehouse owner recs;
SQL
