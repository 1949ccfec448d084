# Databricks notebook source
# MAGIC %md
# MAGIC # relisten_spark: run one stage
# MAGIC Runs a `relisten` command on the cluster's existing Spark session with `conf/databricks.yaml`.
# MAGIC Widgets: `command` (ingest, features, train-gbdt, ..., pipeline) and `overrides` (`key=value;key=value`).

# COMMAND ----------

dbutils.widgets.text("command", "pipeline")  # noqa: F821
dbutils.widgets.text("conf", "../conf/databricks.yaml")  # noqa: F821
dbutils.widgets.text("overrides", "")  # noqa: F821

# COMMAND ----------

from relisten_spark.cli import format_summary, run_command
from relisten_spark.config import load_config

overrides = [kv for kv in dbutils.widgets.get("overrides").split(";") if kv]  # noqa: F821
cfg = load_config(dbutils.widgets.get("conf"), overrides)  # noqa: F821
print(format_summary(run_command(dbutils.widgets.get("command"), cfg)))  # noqa: F821
