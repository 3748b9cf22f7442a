"""The configured ALS trainer: ``implicit`` in this process (on the GPU when implicit was built
with CUDA and the device allows it), or Spark MLlib on the configured Spark (``trainer``).
Both take an ``InteractionMatrix`` and return ``Factors``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pipelines.core.settings import Settings
from pipelines.model.retrieval import Trainer


def als_backend(settings: Settings) -> str:
    """Where ALS runs for these settings on this worker: ``implicit-gpu`` (implicit built with
    CUDA, device not forced to CPU), ``implicit-cpu``, or ``spark_als on <master>``."""
    from pipelines.core.devices import implicit_has_cuda

    if settings.trainer == "spark_als":
        return f"spark_als on {settings.spark.master}"
    return "implicit-gpu" if settings.device != "cpu" and implicit_has_cuda() else "implicit-cpu"


@contextmanager
def open_trainer(settings: Settings) -> Iterator[Trainer]:
    """The trainer, with its Spark session when it needs one (stopped on exit)."""
    from pipelines.model.als import fit_als

    cfg = settings.model
    if settings.trainer != "spark_als":
        use_gpu = als_backend(settings) == "implicit-gpu"
        yield lambda data: fit_als(data, cfg, use_gpu=use_gpu)
        return
    from pipelines.core.spark import spark_session
    from pipelines.model.spark_als import fit_spark_als

    with spark_session(settings.spark, "recs-train") as spark:
        yield lambda data: fit_spark_als(data, cfg, spark)
