# Databricks notebook source
# MAGIC %md
# MAGIC # 01 · Ingest
# MAGIC Loads the five KKBOX CSVs of `data.raw_dir` into the bronze Delta tables (`events`, `members`,
# MAGIC `songs`, `song_extra`; malformed lines go to `quarantine`), as `relisten ingest` does.
# MAGIC
# MAGIC The cell below installs the engine's wheel (`make wheel` builds it into `dist/`;
# MAGIC `databricks bundle deploy` syncs it with this folder). The cluster's own Spark is kept.

# COMMAND ----------

# MAGIC %pip install ../dist/relisten_spark-0.1.0-py3-none-any.whl

# COMMAND ----------

dbutils.library.restartPython()  # noqa: F821

# COMMAND ----------

dbutils.widgets.text("conf", "../conf/databricks.yaml", "config file")  # noqa: F821
dbutils.widgets.text("lake_root", "", "lake.root (empty: the config's)")  # noqa: F821
dbutils.widgets.text("raw_dir", "", "data.raw_dir (empty: the config's)")  # noqa: F821

# COMMAND ----------

from relisten_spark.cli import run_command, summary_rows
from relisten_spark.config import load_config

widgets = {name: dbutils.widgets.get(name) for name in ("conf", "lake_root", "raw_dir")}  # noqa: F821
keys = {"lake_root": "lake.root", "raw_dir": "data.raw_dir"}
cfg = load_config(widgets["conf"], [f"{key}={widgets[name]}" for name, key in keys.items() if widgets[name]])

# COMMAND ----------

results = run_command("ingest", cfg)
display(spark.createDataFrame(summary_rows(results), "stage string, key string, value string"))  # noqa: F821
