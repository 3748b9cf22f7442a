"""Writing generated or imported days into a raw root (the contract's layout), as the producer
of the raw logs would land them."""

from __future__ import annotations

from collections.abc import Iterable

from pipelines.core import catalog as cat
from pipelines.core.contracts import RawDay
from pipelines.core.storage import Store
from pipelines.validate.rawfiles import raw_file_bytes


def write_days(root: str, days: Iterable[RawDay], fmt: str) -> tuple[int, int]:
    """Write each day's events and catalog changes; returns (days, events) written."""
    store = Store(root)
    n_days = n_events = 0
    for day in days:
        for dataset, frame in ((cat.RAW_EVENTS, day.events), (cat.RAW_ITEMS, day.items)):
            suffix, data = raw_file_bytes(frame, fmt)
            store.write_bytes(data, *dataset.parts(ds=day.ds), f"part-0{suffix}")
        n_days += 1
        n_events += day.events.height
    return n_days, n_events
