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

from relisten_spark.notebook import add_text_widgets

add_text_widgets(dbutils.widgets, "raw_dir")  # noqa: F821

# COMMAND ----------

from relisten_spark.cli import run_command, summary_rows
from relisten_spark.notebook import widget_config

cfg = widget_config(dbutils.widgets, "raw_dir")  # noqa: F821

# COMMAND ----------

results = run_command("ingest", cfg)
display(spark.createDataFrame(summary_rows(results), "stage string, key string, value string"))  # noqa: F821
