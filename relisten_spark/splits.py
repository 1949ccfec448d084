"""The evaluation protocol: which rows fit a model, which calibrate the stack, which report.

Time-ordered by default (SPEC.md): the last ``holdout_fraction`` of train rows by ``idx`` are
held out; the first half of the holdout is ``calib`` (fits the stack), the second ``eval``
(reported). A random split exists only to reproduce the thesis and is labelled ``random``.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from relisten_spark.config import EvaluationConfig


def holdout_bounds(train_rows: int, holdout_fraction: float) -> tuple[int, int]:
    """Positions (0-based, among train rows in idx order) where calib and eval start.

    >>> holdout_bounds(100, 0.2)
    (80, 90)
    """
    holdout = max(2, round(train_rows * holdout_fraction))
    calib_start = max(0, train_rows - holdout)
    eval_start = calib_start + (train_rows - calib_start) // 2
    return calib_start, eval_start


def _train_positions(df: DataFrame) -> tuple[int, int]:
    """(number of train rows, smallest train idx); train idx are dense from the smallest."""
    train = df.where(F.col("split") == "train")
    [row] = train.agg(F.count("*").alias("n"), F.min("idx").alias("lo")).collect()  # a global aggregate
    return int(row["n"]), int(row["lo"] or 0)


def holdout_cutoff(df: DataFrame, cfg: EvaluationConfig) -> int:
    """The first ``idx`` of the time holdout: rows with a smaller idx are the fit rows.

    ``df`` is ``[idx, split, ...]`` with dense train idx (bronze.events or silver.features).
    """
    n, lo = _train_positions(df)
    return lo + holdout_bounds(n, cfg.holdout_fraction)[0]


def assign_eval_split(df: DataFrame, cfg: EvaluationConfig) -> DataFrame:
    """Add ``eval_split`` in {fit, calib, eval, test} and ``split_mode`` (time | random).

    ``df``: ``[idx long, split string, ...]``. Test rows are always ``test``. In random mode
    each train row draws its part from a seeded hash of ``idx`` with the same proportions.
    """
    n, lo = _train_positions(df)
    calib_start, eval_start = holdout_bounds(n, cfg.holdout_fraction)
    if cfg.split == "time":
        pos: Column = F.col("idx") - F.lit(lo)
        calib_at, eval_at = F.lit(calib_start), F.lit(eval_start)
    else:
        pos = F.abs(F.xxhash64(F.col("idx"), F.lit(cfg.seed))) % F.lit(n)
        calib_at, eval_at = F.lit(calib_start), F.lit(eval_start)
    part = (
        F.when(F.col("split") != "train", F.lit("test"))
        .when(pos < calib_at, F.lit("fit"))
        .when(pos < eval_at, F.lit("calib"))
        .otherwise(F.lit("eval"))
    )
    return df.withColumn("eval_split", part).withColumn("split_mode", F.lit(cfg.split))
