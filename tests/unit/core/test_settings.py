"""Settings: defaults, the TOML file, RECS_* overrides, dotted overrides and named errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from pipelines.core.settings import (
    ConfigError,
    EvalSettings,
    FeatureSettings,
    ModelSettings,
    ServeSettings,
    Settings,
    ValidateSettings,
    apply_overrides,
    duckdb_path,
    env_names,
    load_settings,
    replace,
    settings_schema,
)

NO_ENV: dict[str, str] = {}
REPO = Path(__file__).resolve().parents[3]


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recs.toml"
    path.write_text(text)
    return path


def test_defaults() -> None:
    s = load_settings(env=NO_ENV)
    assert s == Settings()
    assert (s.raw_root, s.lake_root) == ("data/raw", "data/lake")
    assert s.warehouse == "duckdb:///data/warehouse.duckdb"
    assert (s.engine, s.device) == ("polars", "auto")
    assert s.validate == ValidateSettings(lateness_hours=48.0, rating_min=1.0, rating_max=5.0)
    assert s.features.half_life_days == 30.0
    assert s.features.event_weights["purchase"] == 8.0
    assert s.model == ModelSettings(factors=32, iterations=15, regularization=5.0, alpha=1.0,
                                    seed=42)
    assert s.eval == EvalSettings(holdout_days=7, min_test_users=200, max_holdout_days=28,
                                  k=(10, 20, 50))
    assert s.serve == ServeSettings(top_n=100, exclude_seen=True)


def test_file_values(tmp_path: Path) -> None:
    path = _toml(tmp_path, """
raw_root = "/srv/raw"
device = "cpu"

[validate]
lateness_hours = 24

[features]
half_life_days = 7
event_weights = { view = 0.5, purchase = 10.0 }

[model]
factors = 16

[eval]
k = [5, 10, 50]

[serve]
top_n = 20
exclude_seen = false
""")
    s = load_settings(path, env=NO_ENV)
    assert s.raw_root == "/srv/raw"
    assert s.lake_root == "data/lake"   # untouched settings keep their defaults
    assert s.device == "cpu"
    assert s.validate.lateness_hours == 24.0
    assert isinstance(s.validate.lateness_hours, float)   # TOML int into a float setting
    assert s.validate.rating_max == 5.0
    assert s.features.half_life_days == 7.0
    assert dict(s.features.event_weights) == {"view": 0.5, "purchase": 10.0}
    assert s.model == replace(ModelSettings(), factors=16)
    assert s.eval.k == (5, 10, 50)      # a TOML array becomes the tuple the default is
    assert s.serve == ServeSettings(top_n=20, exclude_seen=False)


def test_config_path_from_env(tmp_path: Path) -> None:
    path = _toml(tmp_path, 'lake_root = "/srv/lake"\n')
    assert load_settings(env={"RECS_CONFIG": str(path)}).lake_root == "/srv/lake"


def test_env_overrides_win_over_file(tmp_path: Path) -> None:
    path = _toml(tmp_path, 'raw_root = "file/raw"\ndevice = "cpu"\nlake_root = "file/lake"\n')
    env = {
        "RECS_RAW_ROOT": "env/raw",
        "RECS_DEVICE": "cuda",
        "RECS_WAREHOUSE": "duckdb:////abs/env.duckdb",
        "RECS_ENGINE": "polars",
        "RECS_LAKE_ROOT": "",            # empty: ignored, the file's value stays
        "OTHER": "x",
    }
    s = load_settings(path, env=env)
    assert s.raw_root == "env/raw"
    assert s.device == "cuda"
    assert s.warehouse == "duckdb:////abs/env.duckdb"
    assert s.lake_root == "file/lake"


def test_cluster_addresses_come_from_env() -> None:
    s = load_settings(env={"RECS_SPARK_MASTER": "spark://spark-master:7077",
                           "RECS_DASK_SCHEDULER": "tcp://dask-scheduler:8786"})
    assert s.spark.master == "spark://spark-master:7077"
    assert s.dask.scheduler == "tcp://dask-scheduler:8786"
    assert load_settings(env={}).spark.master == "local[2]"


def test_explicit_overrides_win_over_env() -> None:
    s = load_settings(env={"RECS_DEVICE": "cuda"},
                      overrides={"device": "cpu", "serve.top_n": 5, "engine": None})
    assert s.device == "cpu"
    assert s.serve.top_n == 5
    assert s.engine == "polars"   # a None override (flag not given) changes nothing


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", env=NO_ENV)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ('colour = "blue"\n', "colour"),
        ("[model]\nlayers = 3\n", "model.layers"),
        ("[serve.extra]\nx = 1\n", "serve.extra"),
    ],
)
def test_unknown_key_raises_naming_it(tmp_path: Path, text: str, name: str) -> None:
    with pytest.raises(ConfigError, match=rf"{name}: unknown setting"):
        load_settings(_toml(tmp_path, text), env=NO_ENV)


def test_section_must_be_a_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model: expected a table"):
        load_settings(_toml(tmp_path, "model = 3\n"), env=NO_ENV)


@pytest.mark.parametrize(
    ("text", "env", "match"),
    [
        ('engine = "flink"\n', NO_ENV, "engine='flink'"),
        ('device = "tpu"\n', NO_ENV, "device='tpu'"),
        ("", {"RECS_ENGINE": "pandas"}, "engine='pandas'"),
        ("", {"RECS_DEVICE": "gpu"}, "device='gpu'"),
        ('warehouse = "mysql://db"\n', NO_ENV, "warehouse="),
        ("[features.event_weights]\nlike = 1.0\n", NO_ENV, "unknown event types"),
        ("[serve]\ntop_n = 0\n", NO_ENV, "serve.top_n"),
        ("[eval]\nholdout_days = 0\n", NO_ENV, "eval.holdout_days"),
        ('trainer = "mahout"\n', NO_ENV, "trainer='mahout'"),
        ("", {"RECS_TRAINER": "sgd"}, "trainer='sgd'"),
        ('[gate]\nmetric = "NDCG"\n', NO_ENV, "gate.metric"),
        ("[gate]\nk = 5\n", NO_ENV, "gate.k"),
        ('[embed]\nprecision = "int8"\n', NO_ENV, "embed.precision"),
        ("[embed]\ninterest_alpha = 0.0\n", NO_ENV, "embed.interest_alpha"),
        ("[retrieval]\nridge = 0.0\n", NO_ENV, "retrieval.ridge"),
        ("[ranker]\nsplits = 0\n", NO_ENV, "ranker.splits"),
        ("[eval]\nmax_holdout_days = 3\n", NO_ENV, "max_holdout_days must be at least"),
        ('[serve]\nexclude_event_types = ["like"]\n', NO_ENV, "serve.exclude_event_types"),
        ("[serve]\nexclude_event_types = [1]\n", NO_ENV, "serve.exclude_event_types"),
        ("[serve]\nmmr_lambda = 1.5\n", NO_ENV, "serve.mmr_lambda"),
        ("[serve]\nmin_user_coverage = 2\n", NO_ENV, "serve.min_user_coverage"),
        ("[serve]\nretention_days = -1\n", NO_ENV, "serve.retention_days"),
    ],
)
def test_bad_values_raise(tmp_path: Path, text: str, env: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_settings(_toml(tmp_path, text), env=env)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ('[serve]\ntop_n = "20"\n', "serve.top_n"),
        ('[model]\nfactors = "many"\n', "model.factors"),
        ('[validate]\nlateness_hours = "2d"\n', "validate.lateness_hours"),
        ("[eval]\nk = 10\n", "eval.k"),
    ],
    ids=["top_n-text", "factors-text", "lateness-text", "k-scalar"],
)
def test_wrongly_typed_value_raises_config_error_naming_it(
    tmp_path: Path, text: str, name: str
) -> None:
    # README: "An unknown key or a bad value stops the run with a message naming the key."
    with pytest.raises(ConfigError, match=name):
        load_settings(_toml(tmp_path, text), env=NO_ENV)


def test_apply_overrides_with_dotted_keys() -> None:
    base = Settings()
    s = apply_overrides(base, {"serve.top_n": 7, "model.factors": 4, "device": "cpu",
                               "features.half_life_days": 2.5, "eval.holdout_days": None})
    assert s.serve.top_n == 7
    assert s.model.factors == 4
    assert s.device == "cpu"
    assert s.features.half_life_days == 2.5
    assert s.eval.holdout_days == 7
    # Everything else is untouched and the input is not modified.
    assert s.model == replace(base.model, factors=4)
    assert base.serve.top_n == 100


def test_apply_overrides_are_validated() -> None:
    with pytest.raises(ConfigError, match="device='tpu'"):
        apply_overrides(Settings(), {"device": "tpu"})
    with pytest.raises(ConfigError, match="serve.top_n"):
        apply_overrides(Settings(), {"serve.top_n": 0})


def test_settings_are_frozen() -> None:
    with pytest.raises(ValidationError, match="frozen"):
        Settings().device = "cpu"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("duckdb:///data/warehouse.duckdb", "data/warehouse.duckdb"),
        ("duckdb:///warehouse.duckdb", "warehouse.duckdb"),
        ("duckdb:////var/lib/recs/warehouse.duckdb", "/var/lib/recs/warehouse.duckdb"),
    ],
)
def test_duckdb_path(url: str, path: str) -> None:
    assert duckdb_path(Settings(warehouse=url).warehouse) == path


def test_feature_settings_defaults_are_independent() -> None:
    a, b = FeatureSettings(), FeatureSettings()
    assert a.event_weights == b.event_weights
    assert a.event_weights is not b.event_weights


def test_postgresql_warehouse_and_serve_lists(tmp_path: Path) -> None:
    text = '[serve]\nexclude_event_types = ["purchase", "rate"]\nshards = 4\n'
    settings = load_settings(_toml(tmp_path, text),
                             env={"RECS_WAREHOUSE": "postgresql://recs@db:5432/analytics"})
    assert settings.warehouse == "postgresql://recs@db:5432/analytics"
    assert settings.serve.exclude_event_types == ("purchase", "rate")
    assert settings.serve.shards == 4


def test_cross_section_rules_are_checked_before_any_task(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"item_template uses unknown field\(s\) \['price'\]"):
        load_settings(_toml(tmp_path, '[embed]\nitem_template = "{title} {price}"\n'), env=NO_ENV)
    with pytest.raises(ConfigError, match="gate.k must be one of eval.k"):
        load_settings(_toml(tmp_path, "[eval]\nk = [5, 20]\n"), env=NO_ENV)
    with pytest.raises(ConfigError, match="rating_min must be below"):
        load_settings(_toml(tmp_path, "[validate]\nrating_min = 5\n"), env=NO_ENV)


def test_any_setting_has_an_environment_variable() -> None:
    s = load_settings(env={"RECS_SERVE__TOP_N": "20", "RECS_VALIDATE__DATA_DOCS": "false",
                           "RECS_EVAL__K": "[5, 10]", "RECS_GATE__K": "5"})
    assert (s.serve.top_n, s.validate.data_docs, s.eval.k) == (20, False, (5, 10))
    with pytest.raises(ConfigError, match="serve.top_n: expected an integer, got 'many'"):
        load_settings(env={"RECS_SERVE__TOP_N": "many"})
    assert {"RECS_RAW_ROOT", "RECS_SERVE__TOP_N", "RECS_SPARK_MASTER"} <= env_names()


def test_the_committed_json_schema_is_current() -> None:
    committed = json.loads((REPO / "settings.schema.json").read_text())
    assert committed == settings_schema(), \
        "regenerate it: recs config --schema > settings.schema.json"
