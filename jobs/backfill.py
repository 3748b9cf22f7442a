"""``recs backfill``: the nightly flow, or validation alone, for every landed day of a range,
oldest first, as an Airflow backfill runs it.

A day is done when validation accepted it (its clean partition exists) or, for the flow, when
its publish task wrote its summary. Done days are skipped unless ``rerun``; the first day that
fails, a day validation rejects included, stops the backfill with its message, and the next
backfill starts again there. A flow backfill first validates the landed days before its range
that are not yet, since every day's validation reads the catalog and event ids of the days
before it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from jobs.console import Progress
from jobs.context import RunContext, default_run_id
from jobs.flow import run_flow
from jobs.logs import get_logger
from jobs.tasks import run_task
from pipelines.core import catalog as cat
from pipelines.core.errors import BackfillError
from pipelines.core.settings import Settings, replace

log = get_logger("backfill")


@dataclass(frozen=True)
class Plan:
    validate: list[date]  # days to validate first (or only)
    flow: list[date]  # days to run the whole flow for
    skipped: list[date]  # days of the range already done


@dataclass
class Outcome:
    validated: list[date] = field(default_factory=list)
    ran: list[date] = field(default_factory=list)
    skipped: list[date] = field(default_factory=list)
    seconds: float = 0.0
    data_docs: str | None = None  # the one Data Docs site of the days validated or run


def validated(ctx: RunContext, day: date) -> bool:
    return ctx.lake.exists(cat.CLEAN_EVENTS, ds=day)


def published(ctx: RunContext, day: date) -> bool:
    return ctx.lake.exists(cat.SUMMARIES["publish"], ds=day)


def plan(ctx: RunContext, start: date | None, end: date, validate_only: bool,
         rerun: bool) -> Plan:
    """The days to run, from the landed raw event days: ``start`` (default the first landed
    day) to ``end``; with ``validate_only`` validation alone, else the flow, after validating
    every earlier landed day not yet validated."""
    landed = ctx.raw.days(cat.RAW_EVENTS)
    if start is None and not validate_only:
        raise BackfillError("a backfill of the whole flow needs --from (the first night to "
                            "run); --validate-only alone starts at the first landed day")
    if start is not None and start > end:
        raise BackfillError(f"--from {start} is after --to {end}")
    first = start or (landed[0] if landed else end)
    days = [d for d in landed if first <= d <= end]
    if not days:
        raise BackfillError(f"no landed day between {first} and {end} under "
                            f"{ctx.raw.url(cat.RAW_EVENTS)}: nothing to backfill")
    done = validated if validate_only else published
    todo = [d for d in days if rerun or not done(ctx, d)]
    skipped = [d for d in days if d not in todo]
    if validate_only:
        return Plan(validate=todo, flow=[], skipped=skipped)
    earlier = [d for d in landed if d < first and not validated(ctx, d)]
    return Plan(validate=earlier, flow=todo, skipped=skipped)


def _quiet(label: str, days: list[date]) -> Callable[[date], None]:
    return lambda day: None


def _each_day(settings: Settings, days: list[date], label: str, what: str,
              step: Callable[[RunContext], object], hint: str,
              progress: Progress) -> list[date]:
    """``step`` for each day in order (``label``: its progress bar); the first failure stops
    it with ``what`` of the day, the error and ``hint``."""
    advance, done = progress(label, days), []
    for day in days:
        try:
            step(RunContext(settings, day, default_run_id(day)))
        except Exception as exc:
            raise BackfillError(f"{what} of {day} failed: {type(exc).__name__}: {exc} (days "
                                f"before it are done; {hint})") from exc
        done.append(day)
        advance(day)
    return done


def backfill(settings: Settings, start: date | None, end: date, validate_only: bool = False,
             rerun: bool = False, progress: Progress = _quiet) -> Outcome:
    """Run the plan; ``progress(label, days)`` returns a callback called after each day."""
    started = time.perf_counter()
    ctx = RunContext(settings, end, "backfill")
    steps = plan(ctx, start, end, validate_only, rerun)
    # One Data Docs site for the whole backfill, rendered at the end, not one per day.
    per_day = replace(settings, validate={"data_docs": False})
    try:
        validated_days = _each_day(
            per_day, steps.validate, "validate", "validation",
            lambda ctx: run_task("validate", ctx),
            "fix the day, or take it with --accept-anomalies, and run the backfill again",
            progress)
        ran = _each_day(per_day, steps.flow, "flow", "the night", run_flow,
                        "run the backfill again to resume there", progress)
    finally:
        # The days done before a failure get their docs too.
        docs = _docs(ctx, [*steps.validate, *steps.flow]) if settings.validate.data_docs else None
    return Outcome(validated=validated_days, ran=ran, skipped=steps.skipped,
                   seconds=time.perf_counter() - started, data_docs=docs)


def _docs(ctx: RunContext, days: list[date]) -> str | None:
    """The backfill's Data Docs site; a failure to render it is logged, never raised (it
    would hide the error that stopped the backfill, or fail a backfill that is done)."""
    from jobs.tasks.validate import render_site

    try:
        return render_site(ctx.lake, ctx.settings.validate, sorted(days))
    except Exception as exc:
        log.warning("the backfill's Data Docs were not rendered: %s: %s",
                    type(exc).__name__, exc)
        return None
