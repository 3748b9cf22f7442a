"""Structured log lines that carry the task, ``ds`` and ``run_id`` of whatever is running.

Two formats: ``text`` (``... INFO [task=embed ds=2026-10-14 run_id=...] message``, the default)
and ``json`` (one object per line, for log shippers), picked by ``RECS_LOG_FORMAT``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TextIO

_context: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("recs_log_context", default=())
FORMATS = ("text", "json")


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        ctx = _context.get()
        record.recs_fields = dict(ctx)
        record.recs = " ".join(f"{k}={v}" for k, v in ctx) or "-"
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
                "level": record.levelname, "logger": record.name,
                **getattr(record, "recs_fields", {}), "message": record.getMessage()}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def setup_logging(level: int = logging.INFO, stream: TextIO | None = None,
                  fmt: str | None = None) -> None:
    """Log ``recs.*`` to ``stream`` (stderr by default; Airflow tasks pass stdout, since
    Airflow files a task's stderr as errors). Once per process."""
    root = logging.getLogger("recs")
    if any(isinstance(f, _ContextFilter) for h in root.handlers for f in h.filters):
        return
    fmt = fmt or os.environ.get("RECS_LOG_FORMAT") or "text"
    if fmt not in FORMATS:
        raise ValueError(f"RECS_LOG_FORMAT={fmt!r}: expected one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(_ContextFilter())
    handler.setFormatter(_JsonFormatter() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s [%(recs)s] %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


@contextmanager
def log_context(**fields: str) -> Iterator[None]:
    merged = {**dict(_context.get()), **{k: str(v) for k, v in fields.items()}}
    token = _context.set(tuple(merged.items()))
    try:
        yield
    finally:
        _context.reset(token)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"recs.{name}")
