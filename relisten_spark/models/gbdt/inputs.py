"""LightGBM's inputs: the rows a backend trains on, the model columns the manifest chooses,
threads per task, parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from relisten_spark.config import Config
from relisten_spark.models.feature_inputs import manifest_rows, require_columns
from relisten_spark.models.presets import TrainSettings


@dataclass(frozen=True)
class TrainRows:
    """What LightGBM trains on, whatever the backend: ``fit`` and ``valid`` (calib rows, for
    early stopping; None to train without) ``[idx long, target int (0/1), *features numeric]``,
    the model columns and those of them that are categorical."""

    fit: DataFrame
    valid: DataFrame | None
    features: list[str]
    categorical: list[str]


def model_columns(
    spark: SparkSession, cfg: Config, profile: str, table: DataFrame
) -> tuple[list[str], set[str]]:
    """The ``in_gbdt`` columns of ``profile`` (in the table's column order) and the categorical ones.

    ``table`` is silver.features of that profile; every manifest column must be in it.
    """
    rows = manifest_rows(spark, cfg, profile, "in_gbdt")
    names = {r["name"] for r in rows}
    require_columns(table, sorted(names), profile)
    return [c for c in table.columns if c in names], {r["name"] for r in rows if r["categorical"]}


def task_threads(spark: SparkSession) -> int:
    """LightGBM threads per task: ``spark.task.cpus`` (1 when unset)."""
    return int(spark.sparkContext.getConf().get("spark.task.cpus", "1"))


def lightgbm_params(settings: TrainSettings, num_threads: int) -> dict[str, Any]:
    """The parameters every backend and the single-process reference train with."""
    return {**settings.params, "num_threads": num_threads}
