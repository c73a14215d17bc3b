VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test up api bench bench-smoke clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

up: $(STAMP)
	$(VENV)/bin/ltm up

api: $(STAMP)
	$(VENV)/bin/ltm api

clean:
	rm -rf $(VENV) .ltm test-output

BENCHES := bench.bench_ingest bench.bench_store bench.bench_flows bench.bench_console

bench: $(STAMP)
	for b in $(BENCHES); do $(PY) -m $$b || exit 1; done

bench-smoke: $(STAMP)
	for b in $(BENCHES); do $(PY) -m $$b --smoke || exit 1; done
