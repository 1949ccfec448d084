"""Holdout predictions of every model, in one table: ``gold.predictions``.

Written by the training stages, read by the stack and by evaluation."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from relisten_spark import lake
from relisten_spark.config import Config


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
    the predicted probability; ``logit`` is derived (clipped to avoid infinities).
    """
    eps = 1e-7
    clipped = F.least(F.greatest(F.col("score"), F.lit(eps)), F.lit(1 - eps))
    out = preds.select(
        F.lit(run_id).alias("run_id"),
        F.lit(model).alias("model"),
        F.lit(model_version).alias("model_version"),
        F.lit(profile).alias("profile"),
        F.col("split_mode").cast("string"),
        F.col("eval_split").cast("string"),
        F.col("idx").cast("long"),
        F.col("msno").cast("string"),
        F.col("song_id").cast("string"),
        F.col("target").cast("int"),
        F.col("score").cast("double"),
        F.log(clipped / (1 - clipped)).alias("logit"),
    )
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
    """Current holdout predictions, optionally of one model and/or profile."""
    where = {k: v for k, v in {"model": model, "profile": profile}.items() if v is not None}
    return lake.read(spark, predictions_path(cfg), where=where or None)
