"""Shared fixtures: a workspace with synthetic raw logs, settings pointing at it, shared data."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest

from jobs.context import RunContext, default_run_id
from jobs.rawdata import write_days
from jobs.tasks import run_task
from pipelines.core import catalog as cat
from pipelines.core.settings import Settings, replace
from pipelines.datasets.generate import GenerateSpec, generate

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

SMALL_SPEC = GenerateSpec(n_users=150, n_items=120, n_days=14, start=date(2026, 10, 1),
                          events_per_day=400, seed=11)


def shared_dataset(name: str) -> Path:
    """A dataset under ../shared/data, or a skip saying why it is absent."""
    folder = SHARED_DATA / name
    if not folder.is_dir():
        pytest.skip(f"{folder} not found: the shared datasets are not beside this clone")
    return folder


def make_settings(root: Path) -> Settings:
    return replace(
        Settings(),
        raw_root=str(root / "raw"),
        lake_root=str(root / "lake"),
        warehouse=f"duckdb:///{root / 'warehouse.duckdb'}",
        device="cpu",
    )


def without_docs(settings: Settings) -> Settings:
    return replace(settings, validate=replace(settings.validate, data_docs=False))


def prepare_history(settings: Settings, spec: GenerateSpec, first_nightly: date) -> None:
    """Write the raw logs and validate every day before the first nightly run (without Data
    Docs: nothing reads them, and they are 40 % of validating a small day)."""
    write_days(settings.raw_root, generate(spec), "parquet")
    settings = without_docs(settings)
    day = spec.start
    while day < first_nightly:
        run_task("validate", RunContext(settings, day, default_run_id(day)))
        day += timedelta(days=1)


@pytest.fixture(scope="session")
def small_spec() -> GenerateSpec:
    return SMALL_SPEC


SMALL_LAST = SMALL_SPEC.start + timedelta(days=SMALL_SPEC.n_days - 1)


def recs_cli(settings: Settings, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """``recs ARGS`` with the stores of ``settings`` in its environment."""
    from jobs.cli import main

    monkeypatch.setenv("RECS_RAW_ROOT", settings.raw_root)
    monkeypatch.setenv("RECS_LAKE_ROOT", settings.lake_root)
    monkeypatch.setenv("RECS_WAREHOUSE", settings.warehouse)
    monkeypatch.setenv("RECS_DEVICE", "cpu")
    return main(list(args))


@pytest.fixture(scope="session")
def before_two_nights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with SMALL_SPEC validated up to the last two days; tests copy it."""
    root = tmp_path_factory.mktemp("before-two-nights") / "ws"
    prepare_history(make_settings(root), SMALL_SPEC, SMALL_LAST - timedelta(days=1))
    return root


@pytest.fixture(scope="session")
def two_nights(tmp_path_factory: pytest.TempPathFactory, before_two_nights: Path) -> Path:
    """A workspace after ``recs run`` for the last two days of SMALL_SPEC; tests that change
    it work on a copy (``copy_workspace``)."""
    root = tmp_path_factory.mktemp("two-nights") / "ws"
    settings = copy_workspace(before_two_nights, root)
    with pytest.MonkeyPatch.context() as mp:
        for ds in (SMALL_LAST - timedelta(days=1), SMALL_LAST):
            assert recs_cli(settings, mp, "run", "--ds", ds.isoformat()) == 0
    return root


def copy_workspace(src: Path, dst: Path) -> Settings:
    shutil.copytree(src, dst)
    return make_settings(dst)


ML100K_LAST_DAY = date(1998, 4, 22)


def movielens_settings(root: Path) -> Settings:
    base = make_settings(root)
    # MovieLens days swing far more than a production stream: take every day as it is. Its
    # last days are thin (849 ratings in the last 3), so hold out two weeks, as
    # `recs experiment movielens` does.
    return replace(base, validate=replace(base.validate, accept_anomalies=True),
                   eval=replace(base.eval, holdout_days=14),
                   hybrid=replace(base.hybrid, validation_days=7))


@pytest.fixture(scope="session")
def ml100k_validated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MovieLens 100K imported and every day but the last validated, once per session."""
    from pipelines.datasets.movielens import load_movielens, to_raw_days

    folder = shared_dataset("ml-100k")
    root = tmp_path_factory.mktemp("ml100k")
    settings = without_docs(movielens_settings(root))
    write_days(settings.raw_root, to_raw_days(load_movielens(folder)), "parquet")
    for ds in RunContext(settings, ML100K_LAST_DAY, "-").raw.days(cat.RAW_EVENTS):
        if ds < ML100K_LAST_DAY:
            run_task("validate", RunContext(settings, ds, default_run_id(ds)))
    return root


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server for the session (CI installs the server package when missing)."""
    from tests.support.pg_local import PostgresServer, find_bindir

    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb) not found: apt-get install -y "
                    "postgresql (CI's .ci/run does)")
    server = PostgresServer(bindir).start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server, request: pytest.FixtureRequest) -> str:
    """A fresh database on the session's server for one test."""
    import re

    name = "t_" + re.sub(r"\W", "_", request.node.name.lower())[:50]
    return postgres_server.create_database(name)


@pytest.fixture(params=["duckdb", "postgresql"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh warehouse on each backend: a DuckDB file, then a PostgreSQL database."""
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path}/warehouse.duckdb"
    return request.getfixturevalue("postgres_url")
