# The two commands of the README: `make demo` and `make test`. Both install first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER ?= $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export OPENBLAS_NUM_THREADS := 1
export HF_HUB_OFFLINE := 1

.PHONY: install demo airflow test test-fast lint bench bench-full lock clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -c requirements.lock -e ".[dev]"
	touch $(STAMP)

demo: install
	$(BIN)/recs demo --airflow

# Airflow's UI on http://127.0.0.1:8080 with the DAG and the demo data; Ctrl-C stops it.
airflow: install
	$(BIN)/recs airflow

test: install
	$(BIN)/python -m pytest

# The unit tier: pure logic on small fixtures, no services (under 2 minutes).
test-fast: install
	$(BIN)/python -m pytest tests/unit -q

# CPU benchmarks under 15 minutes on 2 cores; both write BENCHMARKS.md and its plot.
bench: install
	$(BIN)/python -m benchmarks.bench --profile quick --write BENCHMARKS.md

# The same steps at 1 M events, nights up to 10 M, 200 K users and 3 M rows: hours on 2 cores.
bench-full: install
	$(BIN)/python -m benchmarks.bench --profile full --write BENCHMARKS.md

# ruff, and the architecture's import contracts (pyproject.toml, [tool.importlinter]).
lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# Re-resolve the dependencies from pyproject.toml and pin the result.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install -q -e ".[dev]"
	{ echo "# Pinned versions of every package of the environment (make lock regenerates it)."; \
	  echo "# Used as pip constraints by make install, so another day resolves to the same set."; \
	  .venv-lock/bin/pip freeze --exclude-editable | grep -v '^-e'; } > requirements.lock
	rm -rf .venv-lock

clean:
	rm -rf demo .airflow .pytest_cache
