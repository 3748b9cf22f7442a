"""validate: the day's raw events and catalog rows into clean and quarantine partitions.

Reads ``raw/{events,items}/ds=D/*``, the clean catalog and event ids of earlier days and their
volumes; writes ``clean/``, ``quarantine/``, ``runs/ds=D/dq_results.parquet``, the Data Docs and
``recs.dq_results``. A day that breaks the quarantine-share or volume rule leaves no clean
partition behind, not even one of an earlier run.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable
from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from jobs.context import RunContext
from jobs.logs import get_logger
from pipelines.core import catalog as cat
from pipelines.core.catalog import Dataset, Lake
from pipelines.core.contracts import EVENT_COLUMNS, EVENT_REQUIRED, ITEM_COLUMNS, ITEM_REQUIRED
from pipelines.core.errors import DataQualityError, MissingPartition, UpstreamMissing
from pipelines.core.failpoints import failpoint
from pipelines.core.settings import ValidateSettings
from pipelines.validate import quality
from pipelines.validate.day import Partition, combine, judge_day, summary_facts
from pipelines.validate.docs import DayResults
from pipelines.validate.gx_runner import SuiteRunner
from pipelines.validate.polars_suite import PolarsSession
from pipelines.validate.rawfiles import data_files, parse_raw_file

log = get_logger("tasks")


def raw_partition_landed(ctx: RunContext) -> bool:
    """Whether ``raw/events/ds=D/`` exists (what the sensor waits for and validate needs)."""
    return ctx.raw.exists(cat.RAW_EVENTS, ds=ctx.ds)


def run(ctx: RunContext) -> dict:
    started = time.perf_counter()
    if not raw_partition_landed(ctx):
        raise MissingPartition(f"{ctx.raw.url(cat.RAW_EVENTS, ds=ctx.ds)}: the events "
                               f"partition for {ctx.ds} has not landed")
    cfg = ctx.settings.validate
    _require_validated_history(ctx)
    items = _read_raw(ctx, cat.RAW_ITEMS, ITEM_COLUMNS, ITEM_REQUIRED)
    events = _read_raw(ctx, cat.RAW_EVENTS, EVENT_COLUMNS, EVENT_REQUIRED)
    earlier = [d for d in ctx.lake.days(cat.CLEAN_ITEMS) if d < ctx.ds]
    prior = ctx.read_days(cat.CLEAN_ITEMS, earlier, columns=["item_id"])
    accepted_days = ctx.window(cat.CLEAN_EVENTS, days=ctx.settings.features.history_days,
                               include_ds=False)
    accepted = ctx.read_days(cat.CLEAN_EVENTS, accepted_days, columns=["event_id"])
    empty = pl.Series([], dtype=pl.String)

    with ExitStack() as stack:
        verdict = judge_day(items.frame, events.frame, ctx.ds,
                            prior["item_id"] if prior is not None else empty,
                            accepted["event_id"] if accepted is not None else empty,
                            _trailing_volumes(ctx), cfg, _evaluator(ctx, stack))
    # A rerun without docs drops an earlier run's site of the day: it would not match.
    docs_index = write_site(ctx.lake, cat.DATA_DOCS, cfg,
                            [DayResults(ctx.ds, verdict.dq)] if cfg.data_docs else [], ds=ctx.ds)
    ctx.lake.write(cat.DQ_RESULTS, pl.DataFrame(verdict.dq), ds=ctx.ds)
    ctx.warehouse().record_dq(ctx.run_id, ctx.ds, verdict.dq)
    ctx.lake.write(cat.QUARANTINE_EVENTS, verdict.events.quarantine, ds=ctx.ds)
    ctx.lake.write(cat.QUARANTINE_ITEMS, verdict.items.quarantine, ds=ctx.ds)
    failpoint("validate:quarantined")
    for part, kind in ((events, "events"), (items, "items")):
        if part.extra_columns:
            log.warning("extra columns in raw %s ignored: %s", kind,
                        ", ".join(part.extra_columns))
    e = verdict.events
    log.info("events: %d raw -> %d clean, %d quarantined, %d duplicates (%d files)",
             e.n_raw, e.n_clean, e.n_quarantined, e.n_duplicates, len(events.files))
    log.info("data docs: %s", docs_index or "off ([validate] data_docs = false, or a backfill)")
    summary = summary_facts(verdict, events, items, docs_index)
    try:
        accepted_failures = quality.enforce(verdict.checks, cfg.accept_anomalies)
    except DataQualityError:
        for dataset in (cat.CLEAN_EVENTS, cat.CLEAN_ITEMS):
            ctx.lake.remove_partition(dataset, ds=ctx.ds)
        ctx.summary("validate", seconds=time.perf_counter() - started, rejected=True, **summary)
        raise
    if accepted_failures:
        log.warning("accepted despite: %s", "; ".join(accepted_failures))
    ctx.lake.write(cat.CLEAN_EVENTS, verdict.events.clean, ds=ctx.ds)
    ctx.lake.write(cat.CLEAN_ITEMS, verdict.items.clean, ds=ctx.ds)
    return ctx.summary("validate", seconds=time.perf_counter() - started, rejected=False,
                       **summary)


def _read_raw(ctx: RunContext, dataset: Dataset, columns: dict,
              required: tuple[str, ...]) -> Partition:
    base = ctx.raw.url(dataset, ds=ctx.ds)
    files = [parse_raw_file(f"{base}/{name}", ctx.raw.read_file(dataset, name, ds=ctx.ds))
             for name in data_files(ctx.raw.files(dataset, ds=ctx.ds))]
    return combine(files, columns, required)


def _require_validated_history(ctx: RunContext) -> None:
    """Earlier days must be validated first: the catalog and the accepted event ids of ``ds``
    come from them. Every raw catalog partition before ``ds`` counts, and every raw events
    partition in the history window; a day validate rejected counts as decided."""
    first = ctx.ds - timedelta(days=ctx.settings.features.history_days - 1)
    pending = set()
    for raw, clean in ((cat.RAW_ITEMS, cat.CLEAN_ITEMS), (cat.RAW_EVENTS, cat.CLEAN_EVENTS)):
        for d in ctx.raw.days(raw):
            if d >= ctx.ds or (raw is cat.RAW_EVENTS and d < first):
                continue
            if not (ctx.lake.exists(clean, ds=d)
                    or ctx.lake.exists(cat.VALIDATE_SUMMARY, ds=d)):
                pending.add(d)
    if pending:
        days = sorted(pending)
        raise UpstreamMissing(
            f"{len(days)} earlier day(s) not validated yet ({days[0]} .. {days[-1]}): validate "
            f"them first, oldest first, so the catalog and the duplicate check of {ctx.ds} "
            f"are complete: recs backfill --to {days[-1]} --validate-only")


def _trailing_volumes(ctx: RunContext) -> list[int]:
    """Raw event counts of the accepted days in the volume window before ``ds``."""
    days = ctx.lake.window(cat.VALIDATE_SUMMARY, ctx.ds,
                           ctx.settings.validate.volume_window_days + 1, include_end=False)
    volumes = []
    for d in days:
        if ctx.lake.exists(cat.VALIDATE_SUMMARY, ds=d):
            info = ctx.lake.read(cat.VALIDATE_SUMMARY, ds=d)
            if not info.rejected:
                volumes.append(info.events.raw)
    return volumes


def _evaluator(ctx: RunContext, stack: ExitStack) -> SuiteRunner:
    """The suites' polars translation, or GX itself: on GX's Spark data source on the Spark
    engine, else on pandas (GX has no Dask data source). All give the same verdicts."""
    if ctx.settings.validate.evaluator == "polars":
        return PolarsSession()
    from pipelines.validate.gx_runner import GxSession

    if ctx.settings.engine == "spark":
        from pipelines.core.spark import spark_session

        spark = stack.enter_context(spark_session(ctx.settings.spark, "recs-validate"))
        return GxSession("spark", spark=spark)
    return GxSession("pandas")


def write_site(lake: Lake, dataset: Dataset, cfg: ValidateSettings, days: Iterable[DayResults],
               **keys: Any) -> str | None:
    """A Data Docs site of ``days`` as ``dataset`` in the lake, in place of any earlier one;
    its index URL, or None with no day to show."""
    from pipelines.validate.docs import render

    lake.remove(dataset, **keys)
    days = list(days)
    if not days:
        return None
    with tempfile.TemporaryDirectory() as site:
        render(Path(site), days, cfg)
        lake.write_folder(dataset, Path(site), **keys)
    return lake.url(dataset, **keys) + "/index.html"


def render_site(lake: Lake, cfg: ValidateSettings, days: list[date]) -> str | None:
    """One Data Docs site of the validated days among ``days`` (a backfill's, or ``recs
    docs``'), rendered from their stored verdicts into ``lake/data_docs/``; its index URL."""
    stored = [d for d in days if lake.exists(cat.DQ_RESULTS, ds=d)]
    return write_site(lake, cat.DATA_DOCS_SITE, cfg,
                      (DayResults(d, lake.read(cat.DQ_RESULTS, ds=d).to_dicts()) for d in stored))
