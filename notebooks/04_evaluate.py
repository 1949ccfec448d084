# Databricks notebook source
# MAGIC %md
# MAGIC # 04 · Evaluate
# MAGIC Trains the popularity baseline, computes every model's metrics on the holdout into
# MAGIC `gold.metrics` and writes the HTML report, as `relisten evaluate` does; shows both below.

# COMMAND ----------

# MAGIC %pip install ../dist/relisten_spark-0.1.0-py3-none-any.whl

# COMMAND ----------

dbutils.library.restartPython()  # noqa: F821

# COMMAND ----------

from relisten_spark.notebook import add_text_widgets

add_text_widgets(dbutils.widgets, "models_root")  # noqa: F821

# COMMAND ----------

from relisten_spark.cli import run_command, summary_rows
from relisten_spark.notebook import widget_config

cfg = widget_config(dbutils.widgets, "models_root")  # noqa: F821

# COMMAND ----------

[(stage, summary, seconds)] = results = run_command("evaluate", cfg)
display(spark.createDataFrame(summary_rows(results), "stage string, key string, value string"))  # noqa: F821

# COMMAND ----------

report = str(summary["report"])
with open(report.replace("dbfs:/", "/dbfs/", 1), encoding="utf-8") as page:  # through the FUSE mount
    displayHTML(page.read())  # noqa: F821
