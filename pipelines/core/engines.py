"""Engine adapters: read Parquet into a narwhals LazyFrame on polars, Spark or Dask, and collect
results back as polars. Sessions and clients are made by the caller (an entry point) and passed
in; nothing here starts one at import.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import narwhals as nw
import polars as pl

from pipelines.core.settings import DaskSettings, Settings


class Engine(Protocol):
    name: str

    def read(self, url: str, ts_us: bool = False, **literals: Any) -> nw.LazyFrame:
        """A Parquet file; ``ts_us`` adds the event time in epoch microseconds, ``literals``
        constant columns (such as a day's ``offset``)."""
        ...

    def from_polars(self, frame: pl.DataFrame) -> nw.LazyFrame: ...


def union(frames: list[nw.LazyFrame]) -> nw.LazyFrame:
    return nw.concat(frames, how="vertical")


def collect(frame: nw.LazyFrame) -> pl.DataFrame:
    return frame.collect(backend="polars").to_native()


class PolarsEngine:
    name = "polars"

    def read(self, url: str, ts_us: bool = False, **literals: Any) -> nw.LazyFrame:
        frame = pl.scan_parquet(url)
        if ts_us:
            frame = frame.with_columns(pl.col("ts").dt.epoch("us").alias("ts_us"))
        return nw.from_native(frame.with_columns(
            [pl.lit(v).alias(k) for k, v in literals.items()]))

    def from_polars(self, frame: pl.DataFrame) -> nw.LazyFrame:
        return nw.from_native(frame.lazy())


class SparkEngine:
    name = "spark"

    def __init__(self, spark: Any) -> None:
        self.spark = spark

    def read(self, url: str, ts_us: bool = False, **literals: Any) -> nw.LazyFrame:
        from pyspark.sql import functions as F

        frame = self.spark.read.parquet(url)
        if ts_us:
            frame = frame.withColumn("ts_us", F.unix_micros(F.col("ts")))
        for name, value in literals.items():
            frame = frame.withColumn(name, F.lit(value))
        return nw.from_native(frame)

    def from_polars(self, frame: pl.DataFrame) -> nw.LazyFrame:
        return nw.from_native(self.spark.createDataFrame(frame.to_arrow()))


def _epoch_us(pdf):
    import pandas as pd

    delta = pdf["ts"] - pd.Timestamp(0, tz="UTC")
    return pdf.assign(ts_us=(delta // pd.Timedelta(microseconds=1)).astype("int64"))


def _tolerate_dask_rename_partitioning() -> None:
    """Work around a dask-expr planner bug: after a shuffle-based group-by (more than 15 input
    partitions), a merge asks a renamed frame which columns it is partitioned by, and the
    rename looks the group key up among columns it does not have (KeyError). Answering "none
    known" only skips an optimisation: the merge then shuffles both sides itself."""
    from dask.dataframe.dask_expr._expr import RenameFrame

    prop = RenameFrame.__dict__["unique_partition_mapping_columns_from_shuffle"]
    if getattr(prop, "_recs_tolerant", False):
        return
    original = prop.func

    def tolerant(self):
        try:
            return original(self)
        except KeyError:
            return set()

    patched = functools.cached_property(tolerant)
    patched.__set_name__(RenameFrame, "unique_partition_mapping_columns_from_shuffle")
    patched._recs_tolerant = True
    RenameFrame.unique_partition_mapping_columns_from_shuffle = patched


class DaskEngine:
    name = "dask"

    def __init__(self) -> None:
        _tolerate_dask_rename_partitioning()

    def read(self, url: str, ts_us: bool = False, **literals: Any) -> nw.LazyFrame:
        import dask.dataframe as dd

        frame = dd.read_parquet(url)
        if ts_us:
            frame = frame.map_partitions(_epoch_us)
        if literals:
            frame = frame.assign(**literals)
        return _from_dask(frame)

    def from_polars(self, frame: pl.DataFrame) -> nw.LazyFrame:
        import dask.dataframe as dd

        return _from_dask(dd.from_pandas(frame.to_pandas(), npartitions=1))


def _from_dask(frame: Any) -> nw.LazyFrame:
    with warnings.catch_warnings():
        # narwhals announces a separate Dask plug-in package; the built-in support is what
        # the pinned narwhals provides.
        warnings.simplefilter("ignore", FutureWarning)
        return nw.from_native(frame)


@contextmanager
def dask_client(cfg: DaskSettings) -> Iterator[Any]:
    """A client on ``cfg.scheduler`` or, by default, on a LocalCluster of worker processes."""
    from dask.distributed import Client, LocalCluster

    if cfg.scheduler:
        with Client(cfg.scheduler) as client:
            yield client
        return
    with LocalCluster(n_workers=cfg.workers, threads_per_worker=cfg.threads_per_worker,
                      processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        yield client


@contextmanager
def shard_map(settings: Settings) -> Iterator[Callable[[Callable[..., Any], Any], list]]:
    """A function that calls ``fn(shared, shard=i, shards=n)`` for each of the
    ``serve.shards`` user shards and returns the results in shard order: in this process with
    one shard, else on Dask workers with ``shared`` sent to each worker once."""
    n = settings.serve.shards
    if n == 1:
        yield lambda fn, shared: [fn(shared, shard=0, shards=1)]
        return
    with dask_client(settings.dask) as client:
        def run(fn: Callable[..., Any], shared: Any) -> list:
            ref = client.scatter(shared, broadcast=True)
            return client.gather([client.submit(fn, ref, shard=i, shards=n, pure=False)
                                  for i in range(n)])

        yield run


@contextmanager
def open_engine(settings: Settings) -> Iterator[Engine]:
    """The configured engine with its session or cluster, closed on exit."""
    if settings.engine == "spark":
        from pipelines.core.spark import spark_session

        with spark_session(settings.spark, "recs-features") as spark:
            yield SparkEngine(spark)
    elif settings.engine == "dask":
        with dask_client(settings.dask):
            yield DaskEngine()
    else:
        yield PolarsEngine()
