"""Holdout predictions of every model, in one table: ``gold.predictions`` (schemas.PREDICTIONS),
partitioned by ``(model, profile)``.

Written by ``train-gbdt`` (lightgbm), ``train-nets`` (jenn, felu_net), ``train-stack`` (stack) and
``evaluate`` (the popularity baseline); read by ``train-stack`` (its base models' logits) and by
``evaluate`` (metrics and the report)."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from relisten_spark import lake, schemas
from relisten_spark.config import Config
from relisten_spark.runtime import LOGIT_EPS

# the columns of a model's holdout predictions besides ``score`` (write_predictions derives the rest)
PREDICTION_KEYS = ("idx", "msno", "song_id", "eval_split", "split_mode", "target")


def predictions_path(cfg: Config) -> str:
    return lake.table_path(cfg.lake.root, "gold", "predictions")


def write_predictions(
    spark: SparkSession,
    cfg: Config,
    preds: DataFrame,
    model: str,
    model_version: str,
    profile: str,
    run_id: str,
) -> int:
    """Replace the ``(model, profile)`` partition of gold.predictions with ``preds``.

    ``preds``: ``[idx, msno, song_id, eval_split, split_mode, target, score]`` with ``score``
    the predicted probability; ``logit`` is derived from it, clipped to ``[LOGIT_EPS, 1 - LOGIT_EPS]``.
    """
    clipped = F.least(F.greatest(F.col("score"), F.lit(LOGIT_EPS)), F.lit(1 - LOGIT_EPS))
    derived: dict[str, Column] = {
        "run_id": F.lit(run_id),
        "model": F.lit(model),
        "model_version": F.lit(model_version),
        "profile": F.lit(profile),
        "logit": F.log(clipped / (1 - clipped)),
    }
    fields = schemas.PREDICTIONS.fields
    out = preds.select(*[derived.get(f.name, F.col(f.name)).cast(f.dataType).alias(f.name) for f in fields])
    return lake.write(
        spark,
        out,
        predictions_path(cfg),
        partition_by=["model", "profile"],
        replace_where={"model": model, "profile": profile},
    )


def read_predictions(
    spark: SparkSession, cfg: Config, model: str | None = None, profile: str | None = None
) -> DataFrame:
    """Current holdout predictions (schemas.PREDICTIONS), optionally of one model and/or profile."""
    where = {k: v for k, v in {"model": model, "profile": profile}.items() if v is not None}
    return lake.read(spark, predictions_path(cfg), where=where or None)
