# Databricks notebook source
# MAGIC %md
# MAGIC # 05 · Score
# MAGIC Writes every member's top-N songs for each product surface into `gold.recs_<surface>`
# MAGIC (one `run_date` partition, replaced atomically), with each recommendation's reasons, as
# MAGIC `relisten score` does; shows the summary and the first rows of one surface.

# COMMAND ----------

# MAGIC %pip install ../dist/relisten_spark-0.1.0-py3-none-any.whl

# COMMAND ----------

dbutils.library.restartPython()  # noqa: F821

# COMMAND ----------

from relisten_spark.notebook import add_text_widgets

add_text_widgets(dbutils.widgets, "models_root", "run_date")  # noqa: F821
dbutils.widgets.dropdown("reasons", "path", ["path", "shap"], "scoring.reasons")  # noqa: F821
dbutils.widgets.dropdown("surface", "story", ["story", "shopping"], "surface to show")  # noqa: F821

# COMMAND ----------

from pyspark.sql import functions as F

from relisten_spark import lake
from relisten_spark.cli import run_command, summary_rows
from relisten_spark.notebook import widget_config
from relisten_spark.scoring.score import recs_path

reasons = [f"scoring.reasons={dbutils.widgets.get('reasons')}"]  # noqa: F821
cfg = widget_config(dbutils.widgets, "models_root", "run_date", overrides=reasons)  # noqa: F821

# COMMAND ----------

[(stage, summary, seconds)] = results = run_command("score", cfg)
display(spark.createDataFrame(summary_rows(results), "stage string, key string, value string"))  # noqa: F821

# COMMAND ----------

recs = lake.read(spark, recs_path(cfg, dbutils.widgets.get("surface")))  # noqa: F821
display(recs.where(F.col("run_date") == str(summary["run_date"])).orderBy("msno", "rank").limit(100))  # noqa: F821
