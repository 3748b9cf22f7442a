"""Airflow DAG files: wiring only, every task a one-line call into ``jobs/``."""
