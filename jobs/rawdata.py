"""Writing generated or imported days into a raw root (the contract's layout)."""

from __future__ import annotations

from collections.abc import Iterable

from pipelines.core.contracts import RawDay
from pipelines.core.storage import Store
from pipelines.validate.rawfiles import write_raw_file


def write_days(root: str, days: Iterable[RawDay], fmt: str) -> tuple[int, int]:
    """Write each day's events and catalog changes; returns (days, events) written."""
    store = Store(root)
    n_days = n_events = 0
    for day in days:
        write_raw_file(store, "events", day.ds, day.events, fmt)
        write_raw_file(store, "items", day.ds, day.items, fmt)
        n_days += 1
        n_events += day.events.height
    return n_days, n_events
