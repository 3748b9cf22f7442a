"""Session fixtures: generated workspaces before and after two nights, MovieLens 100K validated,
and warehouses on both backends (helpers are in ``tests.support``)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from jobs.backfill import backfill
from jobs.rawdata import write_days
from pipelines.core.settings import replace
from tests.support.workspace import (
    ML100K_LAST_DAY,
    REFUSED_FINETUNE,
    SMALL_LAST,
    SMALL_SPEC,
    copy_workspace,
    make_settings,
    movielens_settings,
    prepare_history,
    recs_cli,
    shared_dataset,
    without_docs,
)


@pytest.fixture(scope="session")
def before_two_nights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with SMALL_SPEC validated up to the last two days; tests copy it."""
    root = tmp_path_factory.mktemp("before-two-nights") / "ws"
    prepare_history(make_settings(root), SMALL_SPEC, SMALL_LAST - timedelta(days=1))
    return root


@pytest.fixture(scope="session")
def two_nights(tmp_path_factory: pytest.TempPathFactory, before_two_nights: Path) -> Path:
    """A workspace after ``recs run`` for the last two days of SMALL_SPEC, the first with a
    forced fine-tune whose encoder its evaluation refuses (the adopted path is in
    test_finetune_nights); tests that change it work on a copy (``copy_workspace``)."""
    root = tmp_path_factory.mktemp("two-nights") / "ws"
    settings = copy_workspace(before_two_nights, root)
    refused = replace(settings, finetune=REFUSED_FINETUNE)
    with pytest.MonkeyPatch.context() as mp:
        for ds, night in ((SMALL_LAST - timedelta(days=1), refused), (SMALL_LAST, settings)):
            assert recs_cli(night, mp, "run", "--ds", ds.isoformat()) == 0
    return root


@pytest.fixture(scope="session")
def ml100k_validated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MovieLens 100K imported and every day but the last validated, once per session."""
    from pipelines.datasets.movielens import load_movielens, to_raw_days

    folder = shared_dataset("ml-100k")
    root = tmp_path_factory.mktemp("ml100k")
    settings = without_docs(movielens_settings(root))
    write_days(settings.raw_root, to_raw_days(load_movielens(folder)), "parquet")
    backfill(settings, None, ML100K_LAST_DAY - timedelta(days=1), validate_only=True)
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
