VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MLFLOW_VENV ?= .venv-mlflow
MLFLOW_STAMP := $(MLFLOW_VENV)/.installed

.PHONY: install test up api bench bench-smoke bench-mlflow clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Three workers on two cores: most tests wait on real processes (API, Prefect, browser), so a third worker keeps
# the cores busy; every test makes its own uniquely named data or its own server, so they run in any order.
PYTEST_WORKERS ?= 3

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --durations=25

up: $(STAMP)
	$(VENV)/bin/ltm up

api: $(STAMP)
	$(VENV)/bin/ltm api

clean:
	rm -rf $(VENV) .ltm test-output

BENCHES := bench.bench_ingest bench.bench_history bench.bench_store bench.bench_flows bench.bench_console bench.bench_gpus bench.bench_runs \
	bench.bench_fleet bench.bench_sweeps

bench: $(STAMP)
	for b in $(BENCHES); do $(PY) -m $$b || exit 1; done

bench-smoke: $(STAMP)
	for b in $(BENCHES); do $(PY) -m $$b --smoke || exit 1; done

$(MLFLOW_STAMP):
	python3 -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/pip install -q mlflow==3.17.2  # the version bench/README.md quotes
	touch $(MLFLOW_STAMP)

# MLflow side by side, in its own venv; not in BENCHES (CI does not install MLflow). ARGS=--smoke for tiny sizes.
bench-mlflow: $(STAMP) $(MLFLOW_STAMP)
	$(PY) -m bench.bench_mlflow --mlflow-venv $(MLFLOW_VENV) $(ARGS)
