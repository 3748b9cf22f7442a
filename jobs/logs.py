"""Structured log lines that carry the task, ``ds`` and ``run_id`` of whatever is running.

Two formats: ``text`` (``... INFO [task=embed ds=2026-10-14 run_id=...] message``, the default)
and ``json`` (one object per line, for log shippers), picked by ``RECS_LOG_FORMAT``. Under
Airflow every record goes to the task log; the command line shows a console (one line per
finished task, warnings, errors, progress bars) and writes every record to its log file.
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
from pathlib import Path
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


class _ConsoleFilter(logging.Filter):
    """Records at ``level`` or above, and every task-done line (``recs.console``)."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name == CONSOLE or record.levelno >= self.level


class _ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.name != CONSOLE and record.levelno >= logging.WARNING:
            text = f"{record.levelname}: {text}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


CONSOLE = "recs.console"
TEXT_FORMAT = "%(asctime)s %(levelname)s [%(recs)s] %(name)s: %(message)s"


def setup_logging(level: int = logging.INFO, stream: TextIO | None = None,
                  fmt: str | None = None, log_file: str | None = None,
                  console_level: int | None = None) -> None:
    """Log ``recs.*`` to ``stream`` (stderr by default; Airflow tasks pass stdout, since
    Airflow files a task's stderr as errors), every record at ``level`` or above, in the
    structured format. With ``console_level`` (the command line) the stream is a console
    instead: the task-done lines and records at ``console_level`` or above, as plain text,
    and ``log_file`` gets every record at ``level`` in the structured format. Once per
    process."""
    root = logging.getLogger("recs")
    if any(isinstance(f, _ContextFilter) for h in root.handlers for f in h.filters):
        return
    fmt = fmt or os.environ.get("RECS_LOG_FORMAT") or "text"
    if fmt not in FORMATS:
        raise ValueError(f"RECS_LOG_FORMAT={fmt!r}: expected one of {', '.join(FORMATS)}")
    structured = _JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(_ContextFilter())
    if console_level is None:
        handler.setFormatter(structured)
    else:
        handler.addFilter(_ConsoleFilter(console_level))
        handler.setFormatter(_ConsoleFormatter() if console_level > logging.INFO
                             else structured)
    root.addHandler(handler)
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(log_file, encoding="utf-8")
        to_file.addFilter(_ContextFilter())
        to_file.setFormatter(structured)
        root.addHandler(to_file)
    root.setLevel(level)
    root.propagate = False


def cli_levels(verbose: bool) -> tuple[int, int]:
    """(level, console level) of the command line: ``RECS_LOG_LEVEL`` (default INFO) for the
    log file, and for the console too with ``verbose``; else the console shows warnings, errors
    and one line per task."""
    name = (os.environ.get("RECS_LOG_LEVEL") or "").upper()
    level = logging.getLevelNamesMapping().get(name, logging.INFO) if name else logging.INFO
    if name and name not in logging.getLevelNamesMapping():
        raise ValueError(f"RECS_LOG_LEVEL={name!r}: expected DEBUG, INFO, WARNING or ERROR")
    return level, (level if verbose or name else logging.WARNING)


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
