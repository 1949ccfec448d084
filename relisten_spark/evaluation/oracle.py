"""The oracle AUC of synthetic data: how well the true event probabilities rank the same rows.

``relisten generate`` writes ``truth.csv`` (``split,row,p_true``) next to the KKBOX files in
``data.raw_dir``: ``row`` is the 0-based data row within train.csv or test.csv, so the event's
global ``idx`` is ``row`` for train rows and ``n_train + row`` for test rows. No model can beat
the oracle AUC on average; the gap to it says how much signal a model leaves.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from relisten_spark.config import Config
from relisten_spark.errors import InputError
from relisten_spark.metrics import binary_metrics

log = logging.getLogger(__name__)

TRUTH_FILE = "truth.csv"
TRUTH_SCHEMA = "split string, row long, p_true double"
ORACLE_METRIC = "oracle_roc_auc"


def truth_path(cfg: Config) -> str:
    return f"{cfg.data.raw_dir.rstrip('/')}/{TRUTH_FILE}"


def truth_available(cfg: Config) -> bool:
    """True for synthetic data whose truth.csv is there (remote paths are assumed present)."""
    if cfg.data.source != "synthetic":
        return False
    path = truth_path(cfg)
    if "://" in path and not path.startswith("file:"):
        return True
    return os.path.isfile(path.removeprefix("file://").removeprefix("file:"))


def read_truth(spark: SparkSession, path: str) -> DataFrame:
    """``[idx long, p_true double]`` from a truth.csv (``split,row,p_true``)."""
    raw = spark.read.csv(path, header=True, schema=TRUTH_SCHEMA, mode="FAILFAST")
    n_train = raw.where(F.col("split") == "train").count()
    if n_train == 0:
        raise InputError(f"{path} has no train rows")
    return raw.select(
        F.when(F.col("split") == "train", F.col("row")).otherwise(F.col("row") + F.lit(n_train)).alias("idx"),
        "p_true",
    )


def oracle_metrics(truth: DataFrame, preds: DataFrame, group_cols: Sequence[str]) -> DataFrame:
    """``[*group_cols, metric='oracle_roc_auc', value]``: ROC-AUC of ``p_true`` on each group's rows.

    ``truth``: ``[idx, p_true]``; ``preds``: ``[*group_cols, idx, target, ...]``.
    """
    joined = preds.select(*group_cols, "idx", "target").join(truth, "idx")
    aucs = binary_metrics(joined, group_cols, score_col="p_true").where(F.col("metric") == "roc_auc")
    return aucs.select(*group_cols, F.lit(ORACLE_METRIC).alias("metric"), "value")
