"""Structured log lines that carry the task, ``ds`` and ``run_id`` of whatever is running."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_context: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("recs_log_context", default=())


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        ctx = _context.get()
        record.recs = " ".join(f"{k}={v}" for k, v in ctx) or "-"
        return True


def setup_logging(level: int = logging.INFO) -> None:
    root = logging.getLogger("recs")
    if any(isinstance(f, _ContextFilter) for h in root.handlers for f in h.filters):
        return
    handler = logging.StreamHandler()
    handler.addFilter(_ContextFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(recs)s] %(message)s"))
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
