"""Every third-party module the code imports comes from a distribution that pyproject.toml
declares and requirements.lock pins: a package that happens to sit in one developer's
environment fails here, not on a fresh CI machine."""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("pipelines", "jobs", "dags", "benchmarks", "tests")
FIRST_PARTY = set(SOURCES)
# Installed only by an image that has the hardware (pyproject's `cuda` extra), imported lazily.
OPTIONAL = {"dask_cuda"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for source in SOURCES:
        for path in (REPO / source).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], path)
    return found


def test_every_imported_package_is_declared_and_locked() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [
        r for extra in project["optional-dependencies"].values() for r in extra
    ]
    lock = (REPO / "requirements.lock").read_text().splitlines()
    locked = {_canonical(line.split("==")[0]) for line in lock if "==" in line}
    providers = md.packages_distributions()
    reachable = _with_requirements(requirements)

    problems = []
    for module, path in sorted(_imported_modules().items()):
        if module in sys.stdlib_module_names or module in FIRST_PARTY | OPTIONAL:
            continue
        dists = {_canonical(d) for d in providers.get(module, [])}
        where = path.relative_to(REPO)
        if not dists:
            problems.append(f"{module} (imported by {where}) is not installed")
            continue
        if not dists & locked:
            problems.append(f"{module} (imported by {where}): {sorted(dists)} not pinned in "
                            "requirements.lock")
        if not dists & reachable:
            problems.append(f"{module} (imported by {where}) comes from {sorted(dists)}, "
                            "which pyproject.toml does not declare")
    assert not problems, "\n".join(problems)


def _with_requirements(requirements: list[str]) -> set[str]:
    """The declared distributions and everything they require, extras included: ``airflow``
    comes from ``apache-airflow-core``, which the declared ``apache-airflow`` requires, and
    ``distributed`` from ``dask[distributed]``."""
    seen: set[tuple[str, str]] = set()
    stack = [(Requirement(r), "") for r in requirements]
    while stack:
        requirement, extra = stack.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = _canonical(requirement.name)
        for wanted in {""} | requirement.extras:
            if (name, wanted) in seen:
                continue
            seen.add((name, wanted))
            try:
                requires = md.requires(name) or []
            except md.PackageNotFoundError:
                continue
            stack += [(Requirement(r), wanted) for r in requires]
    return {name for name, _ in seen}
