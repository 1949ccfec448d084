# Databricks notebook source
# MAGIC %md
# MAGIC # 03 · Train
# MAGIC Trains one model on one feature profile, as the `relisten` command of that name does:
# MAGIC `train-gbdt` (LightGBM on barrier tasks), `train-nets` (JENN and F-ELU-Net with PyTorch DDP;
# MAGIC set `gpu` on a GPU cluster), `train-stack` (the logistic-regression stack over the base models'
# MAGIC holdout logits) or `train-retriever` (the transformer retriever). Run `train-stack` after the
# MAGIC base models.

# COMMAND ----------

# MAGIC %pip install ../dist/relisten_spark-0.1.0-py3-none-any.whl

# COMMAND ----------

dbutils.library.restartPython()  # noqa: F821

# COMMAND ----------

from relisten_spark.notebook import add_text_widgets

add_text_widgets(dbutils.widgets, "models_root")  # noqa: F821
dbutils.widgets.dropdown(  # noqa: F821
    "command", "train-gbdt", ["train-gbdt", "train-nets", "train-stack", "train-retriever"], "command"
)
dbutils.widgets.dropdown("profile", "serving", ["full", "serving"], "feature profile")  # noqa: F821
dbutils.widgets.dropdown("gpu", "false", ["false", "true"], "train the nets / retriever on GPUs")  # noqa: F821

# COMMAND ----------

from relisten_spark.cli import PROFILE_KEYS, run_command, summary_rows
from relisten_spark.notebook import widget_config

widgets = {name: dbutils.widgets.get(name) for name in ("command", "profile", "gpu")}  # noqa: F821
command = widgets["command"]
overrides = [f"nets.use_gpu={widgets['gpu']}", f"retriever.use_gpu={widgets['gpu']}"]
if command in PROFILE_KEYS:  # the stages that train on one feature profile
    overrides.append(f"{PROFILE_KEYS[command]}.profile={widgets['profile']}")
cfg = widget_config(dbutils.widgets, "models_root", overrides=overrides)  # noqa: F821

# COMMAND ----------

results = run_command(command, cfg)
display(spark.createDataFrame(summary_rows(results), "stage string, key string, value string"))  # noqa: F821
