"""One day's validation as a whole: the partition's files as one text frame, the row verdicts
of events and catalog rows, the row accounting, the day-level rules and the ``dq_results``
rows. The validate task reads the files and writes what this returns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from pipelines.core.settings import ValidateSettings
from pipelines.validate import quality
from pipelines.validate.gx_runner import SuiteRunner
from pipelines.validate.rawfiles import MALFORMED, RawFile
from pipelines.validate.rows import (
    RowVerdict,
    check_castable,
    check_same_schema,
    concat_files,
    conform,
    validate_events,
    validate_items,
)


@dataclass(frozen=True)
class Partition:
    """A raw partition's files as one text frame."""

    frame: pl.DataFrame
    files: list[str]  # URLs, in reading order
    extra_columns: list[str]  # beyond the contract; ignored, and reported


def combine(files: list[RawFile], columns: dict, required: tuple[str, ...]) -> Partition:
    """The files of one partition as one text frame; any file-level problem raises
    RawFileError naming the file."""
    check_same_schema([(f.url, f.fmt, f.dtypes) for f in files], columns)
    frames, extra = [], set()
    for f in files:
        extra |= set(f.frame.columns) - set(columns) - {MALFORMED}
        conformed = conform(f.frame, columns, required, f.url)
        check_castable(conformed, f.url)
        frames.append(conformed)
    return Partition(concat_files(frames, columns), [f.url for f in files], sorted(extra))


@dataclass(frozen=True)
class DayVerdict:
    events: RowVerdict
    items: RowVerdict
    checks: list[quality.DayCheck]
    dq: list[dict]  # recs.dq_results rows

    def reasons(self) -> dict[str, int]:
        """Quarantined events per reason, most frequent first."""
        q = self.events.quarantine
        if not q.height:
            return {}
        return dict(q.get_column("reasons").str.split(",").explode().value_counts(sort=True)
                    .rows())


def judge_day(items_raw: pl.DataFrame, events_raw: pl.DataFrame, ds: date,
              known_items: pl.Series, accepted_ids: pl.Series, trailing_volumes: list[int],
              cfg: ValidateSettings, session: SuiteRunner) -> DayVerdict:
    """Verdicts for the day's catalog rows, then its events (an event's item may arrive in the
    same day's catalog), checked to account for every raw row, and the day-level rules.

    ``known_items``: catalog ids of earlier days; ``accepted_ids``: event ids accepted on
    earlier days of the window; ``trailing_volumes``: raw volumes of the accepted days before.
    """
    items, item_outcomes = validate_items(items_raw, ds, session)
    known = pl.concat([known_items, items.clean["item_id"]]).unique()
    events, event_outcomes = validate_events(events_raw, ds, known, accepted_ids, cfg, session)
    if events.n_raw != events.n_clean + events.n_quarantined + events.n_duplicates:
        raise RuntimeError(f"row accounting broken for {ds}: {events.n_raw} raw rows but "
                           f"{events.n_clean} clean + {events.n_quarantined} quarantined + "
                           f"{events.n_duplicates} duplicates")
    checks = [quality.quarantine_share(events.n_raw, events.n_quarantined, cfg),
              quality.volume(events.n_raw, trailing_volumes, cfg)]
    dq = (quality.dq_rows("events", event_outcomes) + quality.dq_rows("items", item_outcomes)
          + quality.day_rows(checks))
    return DayVerdict(events=events, items=items, checks=checks, dq=dq)


def summary_facts(verdict: DayVerdict, events: Partition, items: Partition,
                  data_docs: str | None) -> dict:
    """What the validate summary says of the day (its volumes are read by later days)."""
    e, i = verdict.events, verdict.items
    return dict(
        events={"files": events.files, "raw": e.n_raw, "clean": e.n_clean,
                "quarantined": e.n_quarantined, "duplicates": e.n_duplicates,
                "reasons": verdict.reasons(), "extra_columns": events.extra_columns},
        items={"files": items.files, "raw": i.n_raw, "clean": i.n_clean,
               "quarantined": i.n_quarantined, "extra_columns": items.extra_columns},
        checks={c.name: {"success": c.success, **c.details} for c in verdict.checks},
        data_docs=data_docs,
    )
