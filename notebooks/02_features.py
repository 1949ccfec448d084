# Databricks notebook source
# MAGIC %md
# MAGIC # 02 · Features
# MAGIC Builds `silver.features` (and its manifest, the SVD tables and the label encoders) for one
# MAGIC profile, as `relisten features` does: `full` reproduces the thesis, `serving` is
# MAGIC point-in-time correct and is what scoring reads.

# COMMAND ----------

# MAGIC %pip install ../dist/relisten_spark-0.1.0-py3-none-any.whl

# COMMAND ----------

dbutils.library.restartPython()  # noqa: F821

# COMMAND ----------

from relisten_spark.notebook import add_text_widgets

add_text_widgets(dbutils.widgets)  # noqa: F821
dbutils.widgets.dropdown("profile", "serving", ["full", "serving"], "features.profile")  # noqa: F821

# COMMAND ----------

from relisten_spark.cli import run_command, summary_rows
from relisten_spark.notebook import widget_config

profile = dbutils.widgets.get("profile")  # noqa: F821
cfg = widget_config(dbutils.widgets, overrides=[f"features.profile={profile}"])  # noqa: F821

# COMMAND ----------

results = run_command("features", cfg)
display(spark.createDataFrame(summary_rows(results), "stage string, key string, value string"))  # noqa: F821
