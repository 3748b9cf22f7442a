"""A fingerprint of what two nights leave behind: every lake path with a digest of its content,
and the published warehouse rows.

It is what "no behaviour changed" means for a refactoring: the same paths, the same data, the same
model versions. Digests ignore what differs between two identical runs: wall-clock times and
durations, the workspace's own location, row order where the writer does not promise one, and
float noise below 12 significant digits (a mean over a group-by sums in varying order). Files
whose content is a rendering of those (Data Docs, the HTML report) count by path only.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

import polars as pl

# fit_key: the kept generators' key hashes the code that fits them (the files themselves count).
VOLATILE_KEYS = frozenset({"started_at", "finished_at", "seconds", "validated_at",
                           "pairs_per_s", "fit_key"})
# GX names each validation result folder by the time it ran.
GX_TIME = re.compile(r"\d{8}T\d{6}\.\d+Z")
PATH_ONLY = (".html", ".css", ".js", ".png", ".svg", ".ico", ".woff", ".woff2", ".ttf", ".eot")
# A workspace's own location, wherever a string holds it (the quarantine's source file, the
# summaries' URLs): everything before its raw/ or lake/ folder.
ROOT = re.compile(r"(?:file://)?/[^\s'\"]*?/(raw|lake)/")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def frame_digest(frame: pl.DataFrame) -> str:
    """Rows in sorted order, floats to 12 significant digits, workspace locations replaced."""
    exprs = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if dtype == pl.String:
            col = col.str.replace_all(ROOT.pattern, "<root>/$1/")
        elif dtype.is_float():
            col = col.round_sig_figs(12)
        exprs.append(col)
    canon = frame.select(exprs).select(sorted(frame.columns))
    keys = [c for c, t in canon.schema.items() if not t.is_nested()]
    if keys:
        canon = canon.sort(keys, nulls_last=True, maintain_order=True)
    buf = io.BytesIO()
    canon.rechunk().write_ipc(buf, compression="uncompressed")
    return _sha(buf.getvalue())


def _canon_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _canon_json(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_canon_json(v) for v in value]
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, str):
        return ROOT.sub(r"<root>/\1/", value)
    return value


def lake_fingerprint(lake: Path) -> dict[str, str]:
    """``relative path -> digest`` for every file under ``lake``."""
    out = {}
    for path in sorted(p for p in lake.rglob("*") if p.is_file()):
        rel = GX_TIME.sub("<time>", str(path.relative_to(lake)))
        if path.suffix in PATH_ONLY:
            out[rel] = "present"
        elif path.suffix == ".parquet":
            out[rel] = frame_digest(pl.read_parquet(path))
        elif path.suffix == ".json":
            canon = _canon_json(json.loads(path.read_bytes()))
            out[rel] = _sha(json.dumps(canon, sort_keys=True).encode())
        else:
            out[rel] = _sha(path.read_bytes())
    return out


WAREHOUSE_QUERIES = {
    "recommendations": "select * from recs.recommendations",
    "popular_items": "select * from recs.popular_items",
    "model_metrics": "select * from recs.model_metrics",
    "items": "select * from recs.items",
    "dq_results": "select * from recs.dq_results",
    "similar_items": "select * from recs.similar_items",
    "pipeline_runs": "select run_id, ds, status, model_version, n_users, n_rows, gate_verdict "
                     "from recs.pipeline_runs",
}


def warehouse_fingerprint(duckdb_file: Path) -> dict[str, str]:
    """``table -> digest`` of what consumers can read, from the DuckDB file."""
    import duckdb

    con = duckdb.connect(str(duckdb_file), read_only=True)
    try:
        return {f"warehouse:{name}": frame_digest(con.sql(sql).pl())
                for name, sql in WAREHOUSE_QUERIES.items()}
    finally:
        con.close()


def night_fingerprint(workspace: Path) -> dict[str, str]:
    """The fingerprint of a workspace laid out as ``raw/``, ``lake/``, ``warehouse.duckdb``."""
    return {**lake_fingerprint(workspace / "lake"),
            **warehouse_fingerprint(workspace / "warehouse.duckdb")}
