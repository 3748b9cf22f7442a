"""Storage adapter over fsspec: the only module that touches files in the raw area or the lake.

Partitions are folders named ``ds=YYYY-MM-DD``. Every write goes to a temporary name first and is
renamed into place, so a killed task never leaves a half-written file under its final name.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

import fsspec
import polars as pl
from fsspec.implementations.local import LocalFileSystem

log = logging.getLogger("recs.storage")


def partition(ds: date) -> str:
    return f"ds={ds.isoformat()}"


class Store:
    """A root folder (local path or fsspec URL) with typed read and write helpers."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")
        self.fs, self._base = fsspec.core.url_to_fs(self.root)

    def path(self, *parts: str) -> str:
        return "/".join([self._base, *parts])

    def url(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def exists(self, *parts: str) -> bool:
        return self.fs.exists(self.path(*parts))

    def listdir(self, *parts: str) -> list[str]:
        """Base names under a folder, sorted; empty when the folder is missing."""
        p = self.path(*parts)
        if not self.fs.exists(p):
            return []
        return sorted(entry.rstrip("/").rsplit("/", 1)[-1] for entry in self.fs.ls(p, detail=False))

    def partitions(self, *parts: str) -> list[date]:
        """The ``ds`` values of the partitions under a folder, oldest first."""
        out = []
        for name in self.listdir(*parts):
            if name.startswith("ds="):
                out.append(date.fromisoformat(name[3:]))
        return sorted(out)

    def remove(self, *parts: str) -> None:
        p = self.path(*parts)
        if self.fs.exists(p):
            self.fs.rm(p, recursive=True)

    def local_folder(self, cache: Path, *parts: str) -> Path:
        """The folder itself when the root is local, else a copy under ``cache``, made once
        (a renamed temporary folder, so a killed copy is never taken for a whole one)."""
        if isinstance(self.fs, LocalFileSystem):
            return Path(self.path(*parts))
        local = cache.joinpath(*parts)
        if not local.is_dir():
            tmp = local.with_name(f".tmp-{uuid.uuid4().hex}")
            tmp.mkdir(parents=True)
            for name in self.listdir(*parts):
                (tmp / name).write_bytes(self.read_bytes(*parts, name))
            tmp.rename(local)
        return local

    def _write_bytes(self, data: bytes, parts: Iterable[str], quiet: bool = False) -> None:
        final = self.path(*parts)
        parent = final.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
        with self.fs.open(tmp, "wb") as f:
            f.write(data)
        self.fs.mv(tmp, final)
        if not quiet:
            log.info("wrote %s (%d bytes)", self.url(*parts), len(data))

    def write_parquet(self, df: pl.DataFrame, *parts: str, quiet: bool = False) -> None:
        buf = io.BytesIO()
        df.write_parquet(buf, compression="zstd", statistics=True)
        self._write_bytes(buf.getvalue(), parts, quiet)

    def read_parquet(self, *parts: str) -> pl.DataFrame:
        with self.fs.open(self.path(*parts), "rb") as f:
            return pl.read_parquet(f)

    def read_parquets(self, files: list[tuple[str, ...]],
                      columns: list[str] | None = None) -> pl.DataFrame:
        """Several files (same schema) concatenated in order. On a local disk polars scans
        them in one pass: a backfill's validation reads hundreds of small partitions a day."""
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (
            self.fs.protocol,)
        if "file" in protocols:
            scan = pl.scan_parquet([self.path(*parts) for parts in files])
            return (scan.select(columns) if columns else scan).collect()
        frames = [self.read_parquet(*parts) for parts in files]
        return pl.concat([f.select(columns) if columns else f for f in frames], how="vertical")

    def write_json(self, obj: Any, *parts: str, quiet: bool = False) -> None:
        text = json.dumps(obj, indent=2, sort_keys=True, default=str)
        self._write_bytes(text.encode(), parts, quiet)

    def read_json(self, *parts: str) -> Any:
        with self.fs.open(self.path(*parts), "rb") as f:
            return json.loads(f.read())

    def write_bytes(self, data: bytes, *parts: str, quiet: bool = False) -> None:
        self._write_bytes(data, parts, quiet)

    def read_bytes(self, *parts: str) -> bytes:
        with self.fs.open(self.path(*parts), "rb") as f:
            return f.read()
