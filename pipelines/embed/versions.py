"""Which encoder a night uses, from the encoder registry's records.

A fine-tune registers a version on its day; the evaluation of a later (or the same) night
adopts or refuses it, once, on a holdout that starts after every day the version learnt
from. A night embeds with the newest version adopted before its day (the
frozen base model when there is none), and, while a version awaits its decision, embeds the
catalog with it too, for the evaluation to compare. Everything here depends on the records
alone, so a rerun or a backfill of a day makes the same choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class EncoderVersion:
    version: str
    trained_on: date  # the day of the fine-tune that made it
    learnt_until: date  # the last day of events it learnt from
    decided_on: date | None = None  # the day of the evaluation that decided it
    adopted: bool | None = None


def adopted_before(versions: list[EncoderVersion], ds: date) -> EncoderVersion | None:
    """The newest version adopted by an evaluation before ``ds`` (the night after a decision
    is the first to use it)."""
    chosen = [v for v in versions if v.adopted and v.decided_on is not None and v.decided_on < ds]
    return max(chosen, key=lambda v: (v.decided_on, v.trained_on, v.version), default=None)


def awaiting(versions: list[EncoderVersion], ds: date) -> EncoderVersion | None:
    """The version the evaluation of ``ds`` decides: the newest trained by ``ds`` that no
    earlier night decided, and newer than the one in use (an older one is superseded)."""
    current = adopted_before(versions, ds)
    open_ = [v for v in versions if v.trained_on <= ds
             and (v.decided_on is None or v.decided_on == ds)
             and (current is None or v.trained_on > current.trained_on)]
    return max(open_, key=lambda v: (v.trained_on, v.version), default=None)


def due(ds: date, every_days: int, force: bool = False) -> bool:
    """Whether the fine-tune runs on ``ds``: forced, or every ``every_days`` days counted from
    1970-01-01 (weekly: Thursdays); never with ``every_days`` 0."""
    return force or bool(every_days and (ds - date(1970, 1, 1)).days % every_days == 0)
