# relisten_spark: `make help` lists the targets.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CONF   ?= conf/local.yaml
ARGS   ?=

.DEFAULT_GOAL := help
.PHONY: help install demo test test-all lint format bench clean java-check

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'

java-check:
	@command -v java >/dev/null 2>&1 || { echo "Java 17 is required: install it (e.g. apt-get install openjdk-17-jre-headless)"; exit 1; }

$(STAMP): setup.py
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e ".[torch,dev]"
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the package with pinned dependencies

demo: java-check $(STAMP) ## run the whole pipeline on generated data (local Spark, ./lakehouse)
	$(VENV)/bin/relisten pipeline --conf $(CONF) $(ARGS)

test: java-check $(STAMP) ## run the test suite (without slow and gpu tests)
	$(PY) -m pytest -q $(ARGS)

test-all: java-check $(STAMP) ## run every test, slow ones included (gpu tests skip without a GPU)
	$(PY) -m pytest -q -m "" $(ARGS)

lint: $(STAMP) ## ruff lint (complexity included), format check, mypy on the package
	$(VENV)/bin/ruff check relisten_spark tests bench jobs
	$(VENV)/bin/ruff format --check relisten_spark tests bench jobs
	$(VENV)/bin/mypy relisten_spark

format: $(STAMP) ## apply ruff formatting and safe fixes
	$(VENV)/bin/ruff check --fix relisten_spark tests bench jobs
	$(VENV)/bin/ruff format relisten_spark tests bench jobs

bench: java-check $(STAMP) ## run the benchmarks (full synthetic scale: long)
	$(PY) bench/generate.py
	$(PY) bench/features.py
	$(PY) bench/gbdt.py
	$(PY) bench/nets.py
	$(PY) bench/score.py

clean: ## remove the local lake, models and generated data
	rm -rf lakehouse models data/raw spark-warehouse
