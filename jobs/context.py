"""What every task gets: the settings, the run's ``ds`` and ``run_id``, and the stores."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import polars as pl

from jobs.logs import get_logger
from pipelines.core.contracts import empty_events, empty_items
from pipelines.core.settings import Settings
from pipelines.core.storage import Store, partition
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
    raw: Store = field(init=False)
    lake: Store = field(init=False)

    def __post_init__(self) -> None:
        self.raw = Store(self.settings.raw_root)
        self.lake = Store(self.settings.lake_root)

    @property
    def part(self) -> str:
        return partition(self.ds)

    def warehouse(self) -> Warehouse:
        return open_warehouse(self.settings.warehouse)

    def window(self, *parts: str, days: int, include_ds: bool = True) -> list[date]:
        """Partitions under ``parts`` in ``(ds - days, ds]`` (or ``< ds`` when not include_ds)."""
        first = self.ds - timedelta(days=days - 1)
        return [
            d for d in self.lake.partitions(*parts)
            if first <= d and (d <= self.ds if include_ds else d < self.ds)
        ]

    def read_partitions(self, kind: str, days: list[date], name: str = "part-0.parquet",
                        columns: list[str] | None = None) -> pl.DataFrame | None:
        if days:
            log.info("reading %s %s..%s (%d partitions)", self.lake.url(kind), days[0],
                     days[-1], len(days))
        frames = []
        for d in days:
            frame = self.lake.read_parquet(*kind.split("/"), partition(d), name)
            frames.append(frame.select(columns) if columns else frame)
        return pl.concat(frames, how="vertical") if frames else None

    def clean_events(self, days: int) -> pl.DataFrame:
        """Clean events of the history window ending at ``ds``."""
        frame = self.read_partitions("clean/events", self.window("clean", "events", days=days))
        return frame if frame is not None else empty_events()

    def catalog(self) -> pl.DataFrame:
        """The catalog as of ``ds``: the latest clean row per item over partitions ``<= ds``."""
        days = [d for d in self.lake.partitions("clean", "items") if d <= self.ds]
        frame = self.read_partitions("clean/items", days)
        return latest_catalog(frame) if frame is not None else empty_items()

    def summary(self, task: str, seconds: float, **facts) -> dict:
        """Write the task's summary; ``started_at`` is for the record only."""
        finished = datetime.now(UTC)
        record = {"task": task, "ds": self.ds.isoformat(), "run_id": self.run_id,
                  "started_at": (finished - timedelta(seconds=seconds)).isoformat(),
                  "finished_at": finished.isoformat(), "seconds": round(seconds, 3), **facts}
        self.lake.write_json(record, "runs", self.part, f"{task}.json", quiet=True)
        log.info("summary: %s", self.lake.url("runs", self.part, f"{task}.json"))
        return record
