"""What every task gets: the settings, the run's ``ds`` and ``run_id``, and the stores."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import polars as pl

from jobs.logs import get_logger
from pipelines.core import catalog as cat
from pipelines.core.catalog import Dataset, Lake
from pipelines.core.contracts import empty_events, empty_items
from pipelines.core.settings import Settings
from pipelines.core.storage import Store
from pipelines.validate.rows import latest_catalog
from pipelines.warehouse import Warehouse, open_warehouse

log = get_logger("context")


def default_run_id(ds: date) -> str:
    """Runs outside Airflow get a run id derived from ``ds``, so a rerun replaces its record."""
    return f"recs__{ds.isoformat()}"


@dataclass
class RunContext:
    settings: Settings
    ds: date
    run_id: str
    raw: Lake = field(init=False)
    lake: Lake = field(init=False)

    def __post_init__(self) -> None:
        self.raw = Lake(Store(self.settings.raw_root), raw=True)
        self.lake = Lake(Store(self.settings.lake_root))

    def warehouse(self) -> Warehouse:
        return open_warehouse(self.settings.warehouse)

    def window(self, dataset: Dataset, days: int, include_ds: bool = True) -> list[date]:
        """Partitions of ``dataset`` in ``(ds - days, ds]`` (or ``< ds`` when not include_ds)."""
        return self.lake.window(dataset, self.ds, days, include_ds)

    def read_days(self, dataset: Dataset, days: list[date], columns: list[str] | None = None,
                  **keys: str) -> pl.DataFrame | None:
        """The partitions of ``days`` concatenated (None for no days)."""
        if days:
            log.info("reading %s %s..%s (%d partitions)",
                     self.lake.store.url(*dataset.partition_parent(**keys)), days[0], days[-1],
                     len(days))
        return self.lake.read_days(dataset, days, columns, **keys)

    def clean_events(self, days: int) -> pl.DataFrame:
        """Clean events of the history window ending at ``ds``."""
        frame = self.read_days(cat.CLEAN_EVENTS, self.window(cat.CLEAN_EVENTS, days=days))
        return frame if frame is not None else empty_events()

    def catalog(self) -> pl.DataFrame:
        """The catalog as of ``ds``: the latest clean row per item over partitions ``<= ds``."""
        days = [d for d in self.lake.days(cat.CLEAN_ITEMS) if d <= self.ds]
        frame = self.read_days(cat.CLEAN_ITEMS, days)
        return latest_catalog(frame) if frame is not None else empty_items()

    def at(self, day: date) -> RunContext:
        """The same run looking at another day (an evaluation's cut-off, a validation split)."""
        return RunContext(self.settings, day, self.run_id)

    def summary(self, task: str, seconds: float, dataset: Dataset | None = None,
                **facts) -> dict:
        """Write the task's summary (``dataset``: where, when not the task's own);
        ``started_at`` is for the record only."""
        finished = datetime.now(UTC)
        record = {"task": task, "ds": self.ds.isoformat(), "run_id": self.run_id,
                  "started_at": (finished - timedelta(seconds=seconds)).isoformat(),
                  "finished_at": finished.isoformat(), "seconds": round(seconds, 3), **facts}
        dataset = dataset or cat.SUMMARIES[task]
        keys = {"ds": self.ds, **{k: facts[k] for k in dataset.keys if k != "ds"}}
        self.lake.write(dataset, record, quiet=True, **keys)
        log.info("summary: %s", self.lake.url(dataset, **keys))
        return record
