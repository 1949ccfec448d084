# relisten_spark: `make help` lists the targets.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CONF   ?= conf/local.yaml
ARGS   ?=

.DEFAULT_GOAL := help
.PHONY: help install demo test test-all lint format bench clean java-check wheel submit tables-doc report-check

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'

java-check:
	@command -v java >/dev/null 2>&1 || { echo "Java 17 is required: install it (e.g. apt-get install openjdk-17-jre-headless)"; exit 1; }

$(STAMP): setup.py
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e ".[local,torch,dev]"
	$(PY) tools/venv_spark_env.py $(VENV) conf
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the package with pinned dependencies

demo: java-check $(STAMP) ## run the whole pipeline on generated data (local Spark, ./lakehouse)
	$(VENV)/bin/relisten pipeline --conf $(CONF) $(ARGS)

test: java-check $(STAMP) ## run the test suite (without slow and gpu tests)
	$(PY) -m pytest -q $(ARGS)

test-all: java-check $(STAMP) ## run every test, slow ones included (gpu tests skip without a GPU)
	$(PY) -m pytest -q -m "" $(ARGS)

REPORT ?= $(shell ls -t lakehouse/reports/*.html 2>/dev/null | head -1)
report-check: $(STAMP) ## draw a report in headless Chromium, screenshot docs/report.png (REPORT=<html>, default the newest)
	REPORT_CHECK_PAGE="$(REPORT)" REPORT_CHECK_SCREENSHOT=docs/report.png $(PY) -m pytest -q -m "" tests/evaluation/test_report_browser.py

wheel: $(STAMP) ## build dist/relisten_spark-<version>-py3-none-any.whl (pyspark not required: clusters keep theirs)
	$(PY) -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir dist .
	@ls -1 dist/*.whl

CMD ?= pipeline
submit: java-check $(STAMP) ## spark-submit jobs/<CMD>.py (CMD=ingest ARGS="--set k=v"); .venv/bin/spark-submit works alone too
	$(VENV)/bin/spark-submit jobs/$(CMD).py --conf $(CONF) $(ARGS)

tables-doc: ## regenerate TABLES.md from the descriptions in relisten_spark/schemas.py
	$(PY) -m relisten_spark.tables_doc TABLES.md

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
