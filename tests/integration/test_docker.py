"""docker/ stays consistent with the code: no Docker engine runs here, so the compose files and
Dockerfiles are parsed and every path, entry point and environment variable they name is
checked against the project and the installed packages. The compose structure is checked
against the parts of the Compose specification these files use."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

from pipelines.core.settings import env_names

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE_FILES = ["docker-compose.yml", "docker-compose.gpu.yml"]
DOCKERFILES = ["Dockerfile", "Dockerfile.gpu"]
BIN = Path(sys.executable).parent

# Compose specification: the top-level and service keys (the subset a valid file may use).
TOP_LEVEL = {"name", "services", "volumes", "networks", "secrets", "configs", "include"}
SERVICE_KEYS = {
    "image", "build", "entrypoint", "command", "environment", "env_file", "volumes", "ports",
    "healthcheck", "restart", "depends_on", "profiles", "secrets", "deploy", "hostname",
    "working_dir", "user", "networks", "labels", "shm_size", "stop_signal",
    "stop_grace_period", "ulimits", "expose", "container_name", "init", "logging",
}
RESTART = {"no", "always", "on-failure", "unless-stopped"}
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
# Variables that are not the pipeline's or Airflow's: read by the images' own tools.
OTHER_VARIABLES = {
    "PYTHONUNBUFFERED", "PIP_DISABLE_PIP_VERSION_CHECK", "HF_HUB_OFFLINE",
    "OPENBLAS_NUM_THREADS", "AIRFLOW_HOME", "VIRTUAL_ENV", "PATH", "UV_PYTHON_INSTALL_DIR",
    "UV_LINK_MODE", "UV_NO_CACHE", "PGPASSWORD", "POSTGRES_USER", "POSTGRES_PASSWORD",
    "SPARK_WORKER_CORES", "SPARK_WORKER_MEMORY",
}


def _compose(name: str) -> dict:
    return yaml.safe_load((DOCKER / name).read_text())


def _services() -> dict[str, dict]:
    return _compose("docker-compose.yml")["services"]


def _interpolations(text: str) -> list[tuple[str, str]]:
    """``(variable, modifier)`` of every ``${VAR...}``: ``:-``/``-`` default, ``:?`` required."""
    return re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?][^}]*)?\}", text)


def _example_env() -> dict[str, str]:
    pairs = [line.split("=", 1) for line in (DOCKER / ".env.example").read_text().splitlines()
             if line and not line.startswith("#")]
    return {k: v for k, v in pairs}


def _source_text() -> str:
    files = [*REPO.glob("pipelines/**/*.py"), *REPO.glob("jobs/**/*.py"), *REPO.glob("dags/*.py")]
    return "\n".join(p.read_text() for p in files)


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    return env if isinstance(env, dict) else dict(e.split("=", 1) for e in env)


def _volume_source(volume: str) -> str:
    """The host side of ``source:target[:mode]``, where the source may be ``${VAR:-default}``."""
    return volume[:volume.index("}") + 1] if volume.startswith("${") else volume.split(":")[0]


def _dockerfile(name: str) -> list[tuple[str, str]]:
    """``(instruction, arguments)`` with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (DOCKER / name).read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1])
            for line in text.splitlines() if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_file_follows_the_specification(name: str) -> None:
    doc = _compose(name)
    assert set(doc) - TOP_LEVEL <= {k for k in doc if k.startswith("x-")}
    base = _services()
    declared_volumes = set(_compose("docker-compose.yml").get("volumes") or {})
    declared_secrets = set(_compose("docker-compose.yml").get("secrets") or {})
    for sname, service in doc["services"].items():
        assert set(service) <= SERVICE_KEYS, (sname, set(service) - SERVICE_KEYS)
        if name == "docker-compose.yml":
            assert "image" in service or "build" in service, sname
        else:
            assert sname in base, f"{name} overrides {sname}, which the base file lacks"
        assert service.get("restart", "no") in RESTART, sname
        for key in ("entrypoint", "command"):
            value = service.get(key)
            assert value is None or (isinstance(value, list)
                                     and all(isinstance(v, str) for v in value)), (sname, key)
        depends = service.get("depends_on") or []
        for target in depends:
            assert target in base and target != sname, (sname, target)
            if isinstance(depends, dict):
                assert depends[target]["condition"] in DEPENDS_CONDITIONS, (sname, target)
        for volume in service.get("volumes") or []:
            source = _volume_source(volume)
            if not source.startswith((".", "/", "$")):
                assert source in declared_volumes, (sname, source)
        for secret in service.get("secrets") or []:
            assert secret in declared_secrets, (sname, secret)
        for port in service.get("ports") or []:
            # published on this host only
            assert re.fullmatch(r"127\.0\.0\.1:(\$\{[A-Z_]+:-\d+\}|\d+):\d+", port), port
        for profile in service.get("profiles") or []:
            assert re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", profile)


def test_compose_runs_what_the_issue_names() -> None:
    services = _services()
    commands = {name: (s.get("entrypoint") or [])[:1] + (s.get("command") or [])[:1]
                for name, s in services.items()}
    for sub in ("api-server", "scheduler", "dag-processor", "triggerer"):
        assert ["airflow", sub] in commands.values(), sub
    assert services["postgres"]["image"].startswith("postgres:")
    assert {n for n, s in services.items() if "spark" in (s.get("profiles") or [])} == {
        "spark-master", "spark-worker"}
    assert {n for n, s in services.items() if "dask" in (s.get("profiles") or [])} == {
        "dask-scheduler", "dask-worker"}
    gpu = _compose("docker-compose.gpu.yml")["services"]["airflow-scheduler"]
    assert gpu["build"]["dockerfile"] == "docker/Dockerfile.gpu"
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_every_referenced_path_exists(name: str) -> None:
    doc = _compose(name)
    ignored = (REPO / ".gitignore").read_text().splitlines()
    for sname, service in doc["services"].items():
        if build := service.get("build"):
            context = (DOCKER / build["context"]).resolve()
            assert context == REPO, sname
            assert (context / build["dockerfile"]).is_file(), (sname, build["dockerfile"])
        for volume in service.get("volumes") or []:
            source = _volume_source(volume)
            if source.startswith("./"):
                assert (DOCKER / source).exists(), (sname, source)
            elif source.startswith("${"):
                # a host folder chosen in .env; its default must never be committed
                default = re.match(r"\$\{\w+:-(.+)\}", source).group(1)
                assert f"/docker/{default.removeprefix('./')}/" in ignored, source
    for secret in (doc.get("secrets") or {}).values():
        default = re.match(r"\$\{\w+:-(.+)\}", secret["file"]).group(1)
        assert f"/docker/{default.removeprefix('./')}" in ignored, secret
    assert "/docker/.env" in ignored


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_copies_existing_paths_and_runs_the_cli(name: str) -> None:
    instructions = _dockerfile(name)
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    copies = [args for op, args in instructions if op == "COPY" and "--from" not in args]
    assert copies
    for args in copies:
        *sources, _ = shlex.split(args)
        for source in sources:
            assert (REPO / source).exists(), (name, source)
    [entrypoint] = [args for op, args in instructions if op == "ENTRYPOINT"]
    assert yaml.safe_load(entrypoint) == ["recs"] and "recs" in scripts
    [cmd] = [args for op, args in instructions if op == "CMD"]
    out = subprocess.run([str(BIN / "recs"), *yaml.safe_load(cmd)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # the image installs the lock's pins, torch and implicit included
    lock = (REPO / "requirements.lock").read_text()
    text = (DOCKER / name).read_text()
    assert "requirements.lock" in text
    for pin in re.findall(r'"((?:torch|implicit)==[^"]+)"', text):
        assert pin in lock, (name, pin)


def test_entry_points_exist_in_the_environment() -> None:
    from airflow.cli.cli_parser import get_parser

    airflow_commands = set(get_parser()._subparsers._group_actions[0].choices)
    dask_commands = {e.name for e in entry_points(group="dask_cli")}
    spark_jars = list((Path(__import__("pyspark").__file__).parent / "jars").glob(
        "spark-core_*.jar"))
    assert spark_jars
    spark_classes = set(zipfile.ZipFile(spark_jars[0]).namelist())
    for name in COMPOSE_FILES:
        for sname, service in _compose(name)["services"].items():
            entry = service.get("entrypoint")
            if entry is None:
                continue
            command = service.get("command") or []
            program = entry[0]
            if program == "bash":
                assert (REPO / entry[1].removeprefix("/opt/recs/")).is_file(), sname
                continue
            assert (BIN / program).exists(), (sname, program)
            if program == "airflow" and command:
                assert command[0] in airflow_commands, (sname, command)
            if program == "dask":
                assert command[0] in dask_commands, (sname, command)
            if program == "spark-class":
                assert command[0].replace(".", "/") + ".class" in spark_classes, sname


def test_environment_variables_are_ones_the_code_reads() -> None:
    from airflow.configuration import conf

    options = conf.configuration_description
    source = _source_text()
    init_sql = (DOCKER / "postgres" / "init-databases.sh").read_text()
    init_script = (DOCKER / "airflow-init.sh").read_text()
    interpolated = {v for n in COMPOSE_FILES
                    for v, _ in _interpolations((DOCKER / n).read_text())}
    in_containers = set()
    for name in COMPOSE_FILES:
        for service in _compose(name)["services"].values():
            in_containers |= set(_environment(service))
    for dockerfile in DOCKERFILES:
        for op, args in _dockerfile(dockerfile):
            if op == "ENV":
                in_containers |= set(re.findall(r"([A-Z_][A-Z0-9_]*)=", args))

    def read_by_something(name: str) -> bool:
        if match := re.fullmatch(r"AIRFLOW__([A-Z_]+?)__([A-Z_]+)", name):
            section, key = match.group(1).lower(), match.group(2).lower()
            return key in options.get(section, {}).get("options", {})
        if name.endswith("_DB_PASSWORD"):
            return name in init_sql
        if name.startswith("RECS_"):
            # the settings, the code, or the Airflow set-up script
            return (name in env_names() or f'"{name}"' in source
                    or "${" + name in init_script)
        return name in OTHER_VARIABLES

    for name in in_containers:
        assert read_by_something(name), name
    # .env also sets compose's own values (ports, image names, the data folder)
    for name in _example_env():
        assert read_by_something(name) or name in interpolated, name


def test_interpolated_variables_are_documented_and_secrets_not_committed() -> None:
    example = _example_env()
    for name in COMPOSE_FILES:
        for variable, modifier in _interpolations((DOCKER / name).read_text()):
            if not modifier or modifier.startswith((":?", "?")):
                assert variable in example, (name, variable)
    for secret in ("POSTGRES_PASSWORD", "AIRFLOW_DB_PASSWORD", "RECS_DB_PASSWORD",
                   "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY"):
        assert example[secret] == "", f"{secret} has a value in .env.example"
    # no password in a URL anywhere in docker/
    for path in DOCKER.rglob("*"):
        if path.is_file():
            assert not re.search(r"://\w+:[^$@/{]+@", path.read_text()), path


def test_warehouse_and_metadata_databases_match_the_init_script() -> None:
    init_sql = (DOCKER / "postgres" / "init-databases.sh").read_text()
    env = _environment(_services()["airflow-scheduler"])
    for url in (env["RECS_WAREHOUSE"], env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]):
        user, database = re.search(r"://(\w+)(?::[^@]*)?@[\w.-]+:\d+/(\w+)", url).groups()
        assert f"create role {user} login" in init_sql, url
        assert f"create database {database} owner {user}" in init_sql, url
    from pipelines.core.settings import load_settings

    settings = load_settings(env={k: v for k, v in env.items() if "$" not in v})
    assert settings.warehouse == env["RECS_WAREHOUSE"]
    assert settings.raw_root == "/data/raw" and settings.lake_root == "/data/lake"
