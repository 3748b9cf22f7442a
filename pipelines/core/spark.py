"""A Spark session configured from the settings; created at an entry point, never at import."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from pipelines.core.settings import SparkSettings


@contextmanager
def spark_session(cfg: SparkSettings, app: str = "recs") -> Iterator:
    """A session on ``cfg.master`` (``local[N]`` by default), stopped on exit."""
    # Workers must run the interpreter the driver runs, with its packages.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    if cfg.checkpoint_dir:
        builder = builder.config("spark.checkpoint.dir", cfg.checkpoint_dir)
    session = (
        builder.master(cfg.master).appName(app)
        .config("spark.sql.shuffle.partitions", str(cfg.shuffle_partitions))
        .config("spark.driver.memory", cfg.driver_memory)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()
