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

dbutils.widgets.text("conf", "../conf/databricks.yaml", "config file")  # noqa: F821
dbutils.widgets.text("lake_root", "", "lake.root (empty: the config's)")  # noqa: F821
dbutils.widgets.dropdown("profile", "serving", ["full", "serving"], "features.profile")  # noqa: F821

# COMMAND ----------

from relisten_spark.cli import run_command, summary_rows
from relisten_spark.config import load_config

widgets = {name: dbutils.widgets.get(name) for name in ("conf", "lake_root", "profile")}  # noqa: F821
overrides = [f"features.profile={widgets['profile']}"]
if widgets["lake_root"]:
    overrides.append(f"lake.root={widgets['lake_root']}")
cfg = load_config(widgets["conf"], overrides)

# COMMAND ----------

results = run_command("features", cfg)
display(spark.createDataFrame(summary_rows(results), "stage string, key string, value string"))  # noqa: F821
