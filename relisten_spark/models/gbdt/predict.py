"""LightGBM's holdout predictions (vectorised Arrow batches), its feature importance and metrics."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from relisten_spark import runtime
from relisten_spark.metrics import binary_metrics
from relisten_spark.models.gbdt.compiled import string_predictor
from relisten_spark.models.gbdt.inputs import task_threads
from relisten_spark.models.gbdt.task import lightgbm_module

PREDICTION_COLUMNS = ("idx", "msno", "song_id", "eval_split", "split_mode", "target")
PREDICTION_SCHEMA = (
    "idx long, msno string, song_id string, eval_split string, split_mode string, target int, score double"
)


def predict(
    spark: SparkSession, rows: DataFrame, model: str, features: list[str], compiled_dir: Path | None = None
) -> DataFrame:
    """Score ``rows`` with a LightGBM model string, in vectorised Arrow batches.

    ``rows``: ``[idx, msno, song_id, eval_split, split_mode, target, *features]``. Returns
    :data:`PREDICTION_SCHEMA` (``score`` = predicted probability). The model is compiled
    (:mod:`~relisten_spark.models.gbdt.compiled`, cached in ``compiled_dir``; None: scored by
    ``Booster.predict``) and loaded once per Python worker (:data:`relisten_spark.runtime.MODELS`,
    keyed by the model's digest).
    """
    key = (runtime.LIGHTGBM, "model string", hashlib.sha1(model.encode()).hexdigest(), compiled_dir)
    shared = spark.sparkContext.broadcast(model)
    keys = list(PREDICTION_COLUMNS)
    threads = task_threads(spark)

    def score(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        predictor = runtime.MODELS.get(key, lambda: string_predictor(shared.value, compiled_dir, threads))
        for batch in batches:
            x = np.column_stack([batch.column(f).to_numpy(zero_copy_only=False) for f in features])
            p = predictor.predict(x.astype(np.float64, copy=False))
            columns = [batch.column(k) for k in keys] + [pa.array(p, pa.float64())]
            yield pa.RecordBatch.from_arrays(columns, names=[*keys, "score"])

    selected = rows.select(
        F.col("idx").cast("long"),
        F.col("msno").cast("string"),
        F.col("song_id").cast("string"),
        F.col("eval_split").cast("string"),
        F.col("split_mode").cast("string"),
        F.col("target").cast("int"),
        *[F.col(f).cast("double").alias(f) for f in features],
    )
    return selected.mapInArrow(score, PREDICTION_SCHEMA)


def feature_importance(model: str) -> list[dict[str, Any]]:
    """``[{feature, gain, split}]`` of a model string, by gain descending."""
    booster = lightgbm_module().Booster(model_str=model)
    gains = booster.feature_importance("gain")
    splits = booster.feature_importance("split")
    table = [
        {"feature": f, "gain": float(g), "split": int(s)}
        for f, g, s in zip(booster.feature_name(), gains, splits, strict=True)
    ]
    return sorted(table, key=lambda r: (-r["gain"], r["feature"]))


def importance_csv(table: list[dict[str, Any]]) -> str:
    """:func:`feature_importance` as CSV text ``feature,gain,split``."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["feature", "gain", "split"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    return out.getvalue()


def split_metrics(preds: DataFrame) -> dict[str, dict[str, float | None]]:
    """``{eval_split: {metric: value}}`` for the labelled holdout rows of a predictions frame."""
    rows = binary_metrics(preds.where(F.col("eval_split").isin("calib", "eval")), ["eval_split"]).collect()
    out: dict[str, dict[str, float | None]] = {}
    for r in rows:  # 7 metrics x 2 splits
        out.setdefault(r["eval_split"], {})[r["metric"]] = r["value"]
    return out
