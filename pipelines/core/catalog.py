"""The lake catalog: every dataset the pipeline keeps, declared once with its path pattern, its
format, the columns or fields readers rely on, and the task that writes it.

Every read and write of the lake goes through ``Lake`` with one of these declarations, so a path
is spelled in one place, a task that runs too early is told which task to run first, and the
JSON records that tasks pass to each other (the model version of a day, the volumes validate
saw) are checked against a schema when written and when read: renaming a field breaks the
writer, not a later night.

Patterns are relative to the lake root; ``{ds}`` is a partition day (``ds=YYYY-MM-DD``), the
other keys are named where they appear. The raw area (``RAW_EVENTS``, ``RAW_ITEMS``) is landed
by others and only read.
"""

from __future__ import annotations

import hashlib
import io
import re
import string
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, ValidationError

from pipelines.core.contracts import EVENT_COLUMNS, ITEM_COLUMNS, METRIC_SCHEMA, REC_SCHEMA
from pipelines.core.errors import UpstreamMissing
from pipelines.core.storage import Store, partition

Format = Literal["parquet", "json", "npy", "npz", "bytes", "folder"]


# --- records tasks pass to each other ------------------------------------------------------------

class Record(BaseModel):
    """A JSON record: the declared fields must be there with these types; others may follow."""

    model_config = ConfigDict(extra="allow", frozen=True)


class TaskSummary(Record):
    """What every task leaves under ``runs/ds=D/<task>.json``."""

    task: str
    ds: str
    run_id: str
    started_at: str
    finished_at: str
    seconds: float


class EventVolumes(Record):
    raw: int
    clean: int
    quarantined: int
    duplicates: int


class ValidateSummary(TaskSummary):
    """Read by later days: the run's start, whether the day was taken, and its raw volume (the
    volume rule's trailing median)."""

    rejected: bool
    events: EventVolumes


class TrainSummary(TaskSummary):
    """Read by precompute and publish: the model version the day's lists come from."""

    model_version: str


class DecisionRecord(Record):
    """Read by precompute (which lists to score) and publish (what to say about them)."""

    published: str
    popular: str
    evaluated: bool
    ranker_passed: bool
    forced: bool
    reason: str


class EvaluateSummary(TaskSummary):
    """Read by publish for the report: the size of the holdout."""

    cutoff: str
    holdout_days: int
    test_pairs: int
    cold_test_pairs: int


class ShardSummary(TaskSummary):
    """Read by publish: which model scored the shard, and for how many users."""

    model_version: str
    model: str
    shard: int
    shards: int
    active_users: int
    users: int
    rows: int
    cold_item_rows: int


class DailyMeta(Record):
    """What a day's feature summaries were built from; a change rebuilds them."""

    settings: str
    validated_at: str | None


# --- declarations --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Dataset:
    name: str
    path: str
    format: Format
    writer: str
    columns: Mapping[str, pl.DataType] | None = None
    record: type[Record] | None = None
    doc: str = ""
    raw: bool = False  # in the raw area (landed by others), not in the lake

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(f for _, f, _, _ in string.Formatter().parse(self.path) if f)

    def parts(self, **keys: Any) -> tuple[str, ...]:
        missing = set(self.keys) - set(keys)
        if missing:
            raise ValueError(f"{self.name}: missing key(s) {', '.join(sorted(missing))}")
        values = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in keys.items()}
        return tuple(self.path.format(**values).split("/"))

    def partition_parent(self, **keys: Any) -> tuple[str, ...]:
        """The folder that holds this dataset's ``ds=`` partitions."""
        head = self.path.split("/ds={ds}")[0]
        return tuple(head.format(**keys).split("/"))

    def partition_folder(self, **keys: Any) -> tuple[str, ...]:
        """The ``.../ds=D`` folder of one partition."""
        return (*self.partition_parent(**keys), partition(keys["ds"]))

    def pattern(self) -> re.Pattern[str]:
        """A regular expression matching the dataset's relative paths (files below a folder
        dataset included)."""
        out, pos = "", 0
        for m in re.finditer(r"\{(\w+)\}", self.path):
            out += re.escape(self.path[pos:m.start()])
            out += r"\d{4}-\d{2}-\d{2}" if m.group(1) == "ds" else r"[^/]+"
            pos = m.end()
        out += re.escape(self.path[pos:])
        return re.compile(out + ("(/.+)?" if self.format == "folder" else "") + "$")


def _d(name: str, path: str, fmt: Format, writer: str, **kw: Any) -> Dataset:
    return Dataset(name, path, fmt, writer, **kw)


RAW_EVENTS = _d("raw_events", "events/ds={ds}", "folder", "the producer of the raw logs",
                raw=True, doc="the day's events: Parquet, CSV or JSON-lines files")
RAW_ITEMS = _d("raw_items", "items/ds={ds}", "folder", "the producer of the raw logs", raw=True,
               doc="the day's catalog changes")

CLEAN_EVENTS = _d("clean_events", "clean/events/ds={ds}/part-0.parquet", "parquet", "validate",
                  columns=EVENT_COLUMNS, doc="events that passed every expectation")
CLEAN_ITEMS = _d("clean_items", "clean/items/ds={ds}/part-0.parquet", "parquet", "validate",
                 columns=ITEM_COLUMNS, doc="catalog rows that passed every expectation")
QUARANTINE_EVENTS = _d("quarantine_events", "quarantine/events/ds={ds}/part-0.parquet",
                       "parquet", "validate", doc="raw event text, source file, reasons")
QUARANTINE_ITEMS = _d("quarantine_items", "quarantine/items/ds={ds}/part-0.parquet", "parquet",
                      "validate", doc="raw catalog text, source file, reasons")
DQ_RESULTS = _d("dq_results", "runs/ds={ds}/dq_results.parquet", "parquet", "validate",
                doc="one row per expectation and day-level check, as in recs.dq_results")
DATA_DOCS = _d("data_docs", "runs/ds={ds}/data_docs", "folder", "validate",
               doc="the Great Expectations Data Docs site of the day")
DATA_DOCS_SITE = _d("data_docs_site", "data_docs", "folder", "validate",
                    doc="a Data Docs site of several days (a backfill's, or recs docs')")
VALIDATE_SUMMARY = _d("validate_summary", "runs/ds={ds}/validate.json", "json", "validate",
                      record=ValidateSummary)

DAILY_PAIRS = _d("daily_pairs", "features/daily/pairs/ds={ds}/part-0.parquet", "parquet",
                 "aggregate", doc="one day's (user, item) summary")
DAILY_USERS = _d("daily_users", "features/daily/users/ds={ds}/part-0.parquet", "parquet",
                 "aggregate", doc="one day's user summary")
DAILY_ITEMS = _d("daily_items", "features/daily/items/ds={ds}/part-0.parquet", "parquet",
                 "aggregate", doc="one day's item summary")
DAILY_META = _d("daily_meta", "features/daily/meta/ds={ds}/meta.json", "json", "aggregate",
                record=DailyMeta)
INTERACTIONS = _d("interactions", "features/ds={ds}/interactions.parquet", "parquet",
                  "aggregate", doc="(user, item) confidence and counts over the window")
USER_FEATURES = _d("user_features", "features/ds={ds}/users.parquet", "parquet", "aggregate")
ITEM_FEATURES = _d("item_features", "features/ds={ds}/items.parquet", "parquet", "aggregate")
AGGREGATE_SUMMARY = _d("aggregate_summary", "runs/ds={ds}/aggregate.json", "json", "aggregate",
                       record=TaskSummary)

ITEM_VECTORS = _d("item_vectors", "embeddings/items/ds={ds}/part-0.parquet", "parquet", "embed",
                  doc="item_id, text_hash, model, vector")
USER_VECTORS = _d("user_vectors", "embeddings/users/ds={ds}/part-0.parquet", "parquet", "embed",
                  doc="user_id, text_hash, model, vector of the history text")
INTEREST = _d("interest", "embeddings/interest/ds={ds}/part-0.parquet", "parquet", "embed",
              doc="the user-interest memory after the day")
CANDIDATE_ITEM_VECTORS = _d("candidate_item_vectors",
                            "embeddings/candidate/items/ds={ds}/part-0.parquet", "parquet",
                            "embed", doc="item_id, text_hash, model, vector by the fine-tuned "
                                         "encoder awaiting its evaluation")
EMBED_CACHE = _d("embed_cache", "embeddings/cache/{model}/ds={ds}/part-0.parquet", "parquet",
                 "embed", doc="text_hash, vector: the texts first embedded on the day")
EMBED_SUMMARY = _d("embed_summary", "runs/ds={ds}/embed.json", "json", "embed",
                   record=TaskSummary)

# The encoder registry: one folder per fine-tuned encoder version.
ENCODER_MODEL = _d("encoder_model", "encoders/{version}/model", "folder", "finetune",
                   doc="a fine-tuned encoder: weights, config and tokenizer, as Hugging Face "
                       "saves them")
ENCODER_LINEAGE = _d("encoder_lineage", "encoders/{version}/lineage.json", "json", "finetune",
                     doc="the base encoder, the days and pairs it learnt from, its settings "
                         "and the hash of its weights")
ENCODER_DECISION = _d("encoder_decision", "encoders/{version}/decision.json", "json",
                      "evaluate", doc="whether the evaluation adopted it, on which day, and why")
FINETUNE_SUMMARY = _d("finetune_summary", "runs/ds={ds}/finetune.json", "json", "finetune",
                      record=TaskSummary)

# The registry: one folder per model version.
MODEL_USERS = _d("model_users", "models/{version}/users.parquet", "parquet", "train")
MODEL_ITEMS = _d("model_items", "models/{version}/items.parquet", "parquet", "train")
MODEL_ARRAY = _d("model_array", "models/{version}/{array}.npy", "npy", "train")
MODEL_MATRIX = _d("model_matrix", "models/{version}/{matrix}.npz", "npz", "train")
MODEL_RANKER = _d("model_ranker", "models/{version}/ranker.json", "bytes", "train",
                  doc="the LightGBM boosters; absent when there was too little to train on")
MODEL_CONFIG = _d("model_config", "models/{version}/config.json", "json", "train")
MODEL_LINEAGE = _d("model_lineage", "models/{version}/lineage.json", "json", "train")
MODEL_METRICS = _d("model_metrics", "models/{version}/metrics.json", "json", "publish",
                   doc="the holdout metrics and decision of the run that published it")
# The generators train fitted as of its first training day, kept for evaluate's cut-off (the
# same inputs, jobs.cutoff): the latest night's only.
KEPT_USERS = _d("kept_users", "generators/ds={ds}/users.parquet", "parquet", "train")
KEPT_ITEMS = _d("kept_items", "generators/ds={ds}/items.parquet", "parquet", "train")
KEPT_ARRAY = _d("kept_array", "generators/ds={ds}/{array}.npy", "npy", "train")
KEPT_MATRIX = _d("kept_matrix", "generators/ds={ds}/{matrix}.npz", "npz", "train")
KEPT_KEY = _d("kept_key", "generators/ds={ds}/key.json", "json", "train",
              doc="the day the generators are as of and the digest of their inputs, "
                  "settings and fitting code; written last")
# ALS factors and co-occurrence neighbours as of a day, kept across nights for the fits of
# later nights that read the same interaction matrix (jobs.fits).
FIT_ARRAY = _d("fit_array", "fits/ds={ds}/{array}.npy", "npy", "train")
FIT_NEIGHBORS = _d("fit_neighbors", "fits/ds={ds}/neighbors.npz", "npz", "train")
FIT_KEY = _d("fit_key", "fits/ds={ds}/key.json", "json", "train",
             doc="the digest of the interaction matrix, the settings and the fitting code; "
                 "written last")
TRAIN_SUMMARY = _d("train_summary", "runs/ds={ds}/train.json", "json", "train",
                   record=TrainSummary)

METRICS = _d("metrics", "runs/ds={ds}/metrics.parquet", "parquet", "evaluate",
             columns=METRIC_SCHEMA, doc="model, metric, k, value on the day's holdout")
METRICS_JSON = _d("metrics_json", "runs/ds={ds}/metrics.json", "json", "evaluate")
LIFTS = _d("lifts", "runs/ds={ds}/lifts.parquet", "parquet", "evaluate",
           doc="each candidate's lift over every other list, with its paired bootstrap interval")
DECISION = _d("decision", "runs/ds={ds}/decision.json", "json", "evaluate", record=DecisionRecord,
              doc="which model's lists the night publishes, and why")
EVALUATE_SUMMARY = _d("evaluate_summary", "runs/ds={ds}/evaluate.json", "json", "evaluate",
                      record=EvaluateSummary)

STAGED_LISTS = _d("staged_lists", "staging/ds={ds}/shards={shards}/part-{shard}.parquet",
                  "parquet", "precompute", columns={**REC_SCHEMA, "reason": pl.String()},
                  doc="one user shard's lists, before the audit")
STAGED_POPULAR = _d("staged_popular", "staging/ds={ds}/popular.parquet", "parquet",
                    "precompute", doc="rank, item_id, score for users the pipeline does not know")
STAGED_SIMILAR = _d("staged_similar", "staging/ds={ds}/similar_items.parquet", "parquet",
                    "precompute", doc="item_id, rank, similar_item_id, score, reason, "
                    "model_version: each item's nearest items, before the audit")
SHARD_SUMMARY = _d("shard_summary", "runs/ds={ds}/precompute-{shard}-of-{shards}.json", "json",
                   "precompute", record=ShardSummary)
PRECOMPUTE_SUMMARY = _d("precompute_summary", "runs/ds={ds}/precompute.json", "json",
                        "precompute", record=TaskSummary)

REPORT = _d("report", "runs/ds={ds}/report.html", "bytes", "publish",
            doc="the run's self-contained HTML report")
PUBLISH_SUMMARY = _d("publish_summary", "runs/ds={ds}/publish.json", "json", "publish",
                     record=TaskSummary)

DATASETS: tuple[Dataset, ...] = tuple(
    v for v in list(globals().values()) if isinstance(v, Dataset))
SUMMARIES: dict[str, Dataset] = {
    "validate": VALIDATE_SUMMARY, "aggregate": AGGREGATE_SUMMARY,
    "finetune": FINETUNE_SUMMARY, "embed": EMBED_SUMMARY,
    "train": TRAIN_SUMMARY, "evaluate": EVALUATE_SUMMARY, "precompute": PRECOMPUTE_SUMMARY,
    "publish": PUBLISH_SUMMARY,
}


def match(relative_path: str, raw: bool = False) -> list[Dataset]:
    """The declarations a relative path belongs to (exactly one for every path the pipeline
    writes)."""
    return [d for d in DATASETS if d.raw == raw and d.pattern().match(relative_path)]


# --- access ------------------------------------------------------------------------------------

def npz_bytes(matrix: sp.csr_matrix) -> bytes:
    """The file ``sp.save_npz`` writes (``sp.load_npz`` reads it), deflated at level 1 and with
    fixed member dates: a fifth of the default level's time for a few percent more bytes, and
    the same matrix gives the same bytes."""
    members = {"indices": matrix.indices, "indptr": matrix.indptr, "format": np.array(b"csr"),
               "shape": np.array(matrix.shape), "data": matrix.data}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, array in members.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)),
                             member.getvalue(), compress_type=zipfile.ZIP_DEFLATED,
                             compresslevel=1)
    return buf.getvalue()


@dataclass
class Lake:
    """Typed reads and writes of declared datasets under one root (the lake, or the raw area
    for the raw declarations)."""

    store: Store
    raw: bool = False

    def _own(self, dataset: Dataset) -> None:
        if dataset.raw != self.raw:
            where = "raw area" if self.raw else "lake"
            raise ValueError(f"{dataset.name} is not a dataset of the {where}")

    def url(self, dataset: Dataset, **keys: Any) -> str:
        self._own(dataset)
        return self.store.url(*dataset.parts(**keys))

    def exists(self, dataset: Dataset, **keys: Any) -> bool:
        self._own(dataset)
        return self.store.exists(*dataset.parts(**keys))

    def require(self, dataset: Dataset, **keys: Any) -> None:
        """UpstreamMissing naming the task to run first, when the dataset is not there."""
        if not self.exists(dataset, **keys):
            day = keys.get("ds")
            raise UpstreamMissing(f"{self.url(dataset, **keys)} is missing: run the "
                                  f"'{dataset.writer}' task" + (f" for {day}" if day else "")
                                  + " first")

    def days(self, dataset: Dataset, **keys: Any) -> list[date]:
        """The ``ds`` of the partitions present, oldest first (the partition folder counts)."""
        self._own(dataset)
        return self.store.partitions(*dataset.partition_parent(**keys))

    def window(self, dataset: Dataset, end: date, days: int, include_end: bool = True,
               **keys: Any) -> list[date]:
        """Partitions in ``(end - days, end]`` (or ``< end`` when not ``include_end``)."""
        first = end - timedelta(days=days - 1)
        return [d for d in self.days(dataset, **keys)
                if first <= d and (d <= end if include_end else d < end)]

    def versions(self, dataset: Dataset) -> list[str]:
        """The ``{version}`` values present of a registry dataset, sorted."""
        self._own(dataset)
        head = dataset.path.split("/{version}")[0]
        return [v for v in self.store.listdir(*head.split("/")) if not v.startswith(".")]

    def local_folder(self, dataset: Dataset, cache: Path, **keys: Any) -> Path:
        """A folder dataset as a local folder, for a library that reads paths."""
        self._own(dataset)
        return self.store.local_folder(cache, *dataset.parts(**keys))

    def files(self, dataset: Dataset, **keys: Any) -> list[str]:
        """Names under a folder dataset, sorted."""
        self._own(dataset)
        return self.store.listdir(*dataset.parts(**keys))

    # -- reads --

    def read(self, dataset: Dataset, **keys: Any) -> Any:
        """A frame (parquet), a record or plain JSON (json), an array (npy) or bytes."""
        self._own(dataset)
        parts = dataset.parts(**keys)
        if dataset.format == "parquet":
            return self.store.read_parquet(*parts)
        if dataset.format == "json":
            value = self.store.read_json(*parts)
            return self._record(dataset, value, keys) if dataset.record else value
        if dataset.format == "npy":
            return np.load(io.BytesIO(self.store.read_bytes(*parts)), allow_pickle=False)
        if dataset.format == "npz":
            return sp.csr_matrix(sp.load_npz(io.BytesIO(self.store.read_bytes(*parts))))
        if dataset.format == "bytes":
            return self.store.read_bytes(*parts)
        raise ValueError(f"{dataset.name} is a folder: read its files with read_file")

    def read_dict(self, dataset: Dataset, **keys: Any) -> dict[str, Any]:
        """A JSON record as written (checked against its declaration), keys in file order."""
        value = self.store.read_json(*dataset.parts(**keys))
        if dataset.record:
            self._record(dataset, value, keys)
        return value

    def sha256(self, dataset: Dataset, **keys: Any) -> str:
        """The hex digest of one stored file's bytes (lineage of what a model read)."""
        self._own(dataset)
        return hashlib.sha256(self.store.read_bytes(*dataset.parts(**keys))).hexdigest()

    def read_file(self, dataset: Dataset, name: str, **keys: Any) -> bytes:
        """One file of a folder dataset."""
        self._own(dataset)
        return self.store.read_bytes(*dataset.parts(**keys), name)

    def read_days(self, dataset: Dataset, days: list[date], columns: list[str] | None = None,
                  **keys: Any) -> pl.DataFrame | None:
        """The partitions of ``days`` concatenated (None for no days)."""
        self._own(dataset)
        if not days:
            return None
        if dataset.format != "parquet":
            raise ValueError(f"{dataset.name} is {dataset.format}: read its days one by one")
        return self.store.read_parquets([dataset.parts(ds=d, **keys) for d in days], columns)

    def _record(self, dataset: Dataset, value: Any, keys: Mapping[str, Any]) -> Record:
        assert dataset.record is not None
        try:
            return dataset.record.model_validate(value)
        except ValidationError as exc:
            raise UpstreamMissing(
                f"{self.url(dataset, **keys)} does not hold a {dataset.record.__name__}: "
                f"{_first_error(exc)}: run the '{dataset.writer}' task again") from None

    # -- writes --

    def write(self, dataset: Dataset, value: Any, quiet: bool = False, **keys: Any) -> None:
        """Write one dataset file atomically (temporary name, then rename)."""
        self._own(dataset)
        if self.raw:
            raise ValueError(f"{dataset.name}: the raw area is read-only for the pipeline")
        parts = dataset.parts(**keys)
        if dataset.format == "parquet":
            self._check_columns(dataset, value)
            self.store.write_parquet(value, *parts, quiet=quiet)
        elif dataset.format == "json":
            if dataset.record:
                try:
                    dataset.record.model_validate(value)
                except ValidationError as exc:
                    raise ValueError(f"{dataset.name}: {_first_error(exc)}") from None
            self.store.write_json(value, *parts, quiet=quiet)
        elif dataset.format == "npy":
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(value), allow_pickle=False)
            self.store.write_bytes(buf.getvalue(), *parts, quiet=quiet)
        elif dataset.format == "npz":
            self.store.write_bytes(npz_bytes(sp.csr_matrix(value)), *parts, quiet=quiet)
        elif dataset.format == "bytes":
            self.store.write_bytes(value, *parts, quiet=quiet)
        else:
            raise ValueError(f"{dataset.name} is a folder: write it with write_folder")

    def write_folder(self, dataset: Dataset, local: Path, **keys: Any) -> None:
        """Copy a local folder's files into a folder dataset, replacing what was there."""
        self.remove(dataset, **keys)
        for path in sorted(local.rglob("*")):
            if path.is_file():
                self.store.write_bytes(path.read_bytes(), *dataset.parts(**keys),
                                       *path.relative_to(local).parts, quiet=True)

    def remove(self, dataset: Dataset, **keys: Any) -> None:
        self._own(dataset)
        self.store.remove(*dataset.parts(**keys))

    def remove_partition(self, dataset: Dataset, **keys: Any) -> None:
        """The whole ``ds=D`` folder of a partitioned dataset."""
        self._own(dataset)
        self.store.remove(*dataset.partition_folder(**keys))

    @staticmethod
    def _check_columns(dataset: Dataset, frame: pl.DataFrame) -> None:
        missing = [c for c in dataset.columns or () if c not in frame.columns]
        if missing:
            raise ValueError(f"{dataset.name}: frame lacks column(s) {', '.join(missing)}")


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    return f"{'.'.join(map(str, err['loc']))}: {err['msg']}"

