"""Every error the pipeline raises on purpose, under one base class that says whether trying
again can help.

``retryable = False``: the message names the file, the column, the setting or the numbers, and
running the same task on the same input meets the same failure, so the Airflow bridge fails the
task at once instead of retrying it. ``retryable = True``: the cause may pass by itself (a
warehouse lock held by a reader). An exception that is not a ``RecsError`` is unexpected; it is
retried, and the CLI prints its traceback.
"""

from __future__ import annotations


class RecsError(Exception):
    """Base of the pipeline's own errors."""

    retryable: bool = False


# --- configuration and inputs ------------------------------------------------------------------

class ConfigError(RecsError, ValueError):
    """A setting that is missing, unknown or out of range; the message names it."""


class ModelNotFound(RecsError, FileNotFoundError):
    """The configured encoder is neither a local folder nor an installed model package."""


class MissingPartition(RecsError, FileNotFoundError):
    """The day's raw events partition has not landed (the sensor waited for it already)."""


class UpstreamMissing(RecsError):
    """A task ran before the task it depends on wrote its output for this ``ds``."""


class RawFileError(RecsError, ValueError):
    """A raw file that cannot be used at all; the message names the file and the reason."""


class MovieLensLayoutError(RecsError, FileNotFoundError):
    """A folder that is not a MovieLens 100K or latest-small download."""


# --- rules the data or the model must pass -----------------------------------------------------

class UntranslatedExpectation(RecsError, NotImplementedError):
    """An expectation (or row condition) of the suites that the polars evaluator cannot
    compute: translate it in ``pipelines/validate/polars_suite.py``, or validate with
    ``[validate] evaluator = "gx"``."""


class DataQualityError(RecsError):
    """The day broke a data-quality rule; nothing downstream may run on it."""


class AuditError(RecsError):
    """The staged run broke a publishing rule; nothing was published."""


class BackfillError(RecsError):
    """A day of ``recs backfill`` failed: the backfill stopped there."""


class TuneError(RecsError):
    """The lake has too little history before ``ds`` to tune on."""


# --- callers' mistakes -------------------------------------------------------------------------

class MetricInputError(RecsError, ValueError):
    """A metric was given frames without the columns it reads, or a k below 1."""


class ReportInputError(RecsError, ValueError):
    """A metrics or cold-item frame without the columns the report reads."""


# --- transient ---------------------------------------------------------------------------------

class WarehouseLocked(RecsError):
    """The DuckDB file stayed locked by another process for the whole wait."""

    retryable = True
