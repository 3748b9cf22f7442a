"""One line per finished task: what went in and came out, the seconds, where the summary is.

The lines go to the ``recs.console`` logger, which the command line's console shows at any
level (the detail goes to its log file); under Airflow they are one more structured line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from datetime import date
from typing import Any

from jobs.logs import get_logger

console = get_logger("console")


def _n(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _validate(s: Mapping) -> str:
    e = s.get("events", {})
    verdict = "rejected" if s.get("rejected") else "accepted"
    return (f"{_n(e.get('raw', 0))} raw events -> {_n(e.get('clean', 0))} clean, "
            f"{_n(e.get('quarantined', 0))} quarantined, {_n(e.get('duplicates', 0))} "
            f"duplicates; {verdict}")


def _aggregate(s: Mapping) -> str:
    out = s.get("rows_out", {})
    return (f"{s.get('days', 0)} days ({s.get('daily_built', 0)} summaries built) on "
            f"{s.get('engine')} -> {_n(out.get('interactions', 0))} interactions, "
            f"{_n(out.get('users', 0))} users, {_n(out.get('items', 0))} items")


def _finetune(s: Mapping) -> str:
    if not s.get("due"):
        return f"not due; next on {s.get('next_due') or 'no day (every_days = 0)'}"
    if not s.get("version"):
        return "too few pairs to fine-tune on"
    return (f"encoder {s['version']}: {_n(s.get('pairs', 0))} pairs, {s.get('steps')} steps "
            f"({s.get('method')}, {s.get('device')}), awaiting the evaluation")


def _embed(s: Mapping) -> str:
    items, users = s.get("items", {}), s.get("users", {})
    tuned = f" with encoder {s['encoder']}" if s.get("encoder") else ""
    candidate = (f"; the catalog by {s['candidate']['version']} too"
                 if s.get("candidate") else "")
    return (f"{_n(items.get('embedded', 0))} item and {_n(users.get('embedded', 0))} user "
            f"texts embedded ({_n(items.get('reused', 0) + users.get('reused', 0))} reused) "
            f"on {s.get('device')}{tuned}{candidate}")


def _train(s: Mapping) -> str:
    ranker = s.get("ranker")
    trained = (f"ranker on {_n(ranker.get('users', 0))} users" if ranker
               else "no ranker (too little history)")
    return (f"model {s.get('model_version')}: {_n(s.get('users', 0))} users x "
            f"{_n(s.get('items', 0))} items ({_n(s.get('cold_items', 0))} cold), {trained}")


def _evaluate(s: Mapping) -> str:
    held = (f"{_n(s.get('test_users', 0))} test users over {s.get('holdout_days', 0)} days"
            if s.get("test_users") else "no holdout yet")
    encoder = s.get("encoder")
    judged = (f"; encoder {encoder['version']} "
              f"{'adopted' if encoder['adopted'] else 'refused'}" if encoder else "")
    return f"{held}: publishes {s.get('published')}{judged}"


def _precompute(s: Mapping) -> str:
    return (f"{_n(s.get('users', 0))} lists, {_n(s.get('rows', 0))} rows "
            f"({_n(s.get('cold_item_rows', 0))} of cold items)")


def _publish(s: Mapping) -> str:
    return (f"{_n(s.get('rows', 0))} rows of {s.get('model_version')} into "
            f"{s.get('warehouse')}; report {s.get('report')}")


LINES: dict[str, Callable[[Mapping], str]] = {
    "validate": _validate, "aggregate": _aggregate, "finetune": _finetune, "embed": _embed,
    "train": _train,
    "evaluate": _evaluate, "precompute": _precompute, "publish": _publish,
}


def task_line(task: str, summary: Mapping, where: str) -> str:
    """``task ds: what in and out (seconds) -> summary file``."""
    line = LINES.get(task.split("[")[0])  # precompute[3]: one shard of precompute
    what = line(summary) if line else ""
    return (f"{task:<10} {summary.get('ds', '')}  {what}  ({summary.get('seconds', 0):.1f} s)"
            f"  summary: {where}")


def done(task: str, summary: Mapping, where: str) -> None:
    console.info(task_line(task, summary, where))


# progress(label, days) -> a callback to call after each day.
Progress = Callable[[str, list[date]], Callable[[date], None]]


@contextmanager
def progress_bars() -> Iterator[Progress]:
    """Progress bars over days on the console (off where stderr is not a terminal), with the
    console's lines printed above them."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with ExitStack() as bars, logging_redirect_tqdm(loggers=[logging.getLogger("recs")]):
        def progress(label: str, days: list[date]) -> Callable[[date], None]:
            if not days:
                return lambda day: None
            bar = bars.enter_context(tqdm(total=len(days), unit="day", desc=label,
                                          disable=None))

            def advance(day: date) -> None:
                bar.set_postfix_str(day.isoformat())
                bar.update()

            return advance

        yield progress
