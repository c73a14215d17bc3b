VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test up api bench clean

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

bench: $(STAMP)
	$(PY) -m bench.bench_flows
	$(PY) -m bench.bench_console
