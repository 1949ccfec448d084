"""What the report says about the eval rows and how sure its AUCs are.

* :func:`eval_rows` — per profile, split mode and model: the eval rows' count, positive rate
  and ``idx`` range, in Spark (one row per group reaches the driver).
* :func:`bootstrap_auc` — 95 % intervals of each model's ROC-AUC and of the stack's gain over
  the best single model, on a bounded sample: at most :data:`BOOTSTRAP_ROWS` eval events of a
  profile and split mode (a Bernoulli sample of the events, each with every model's score, so
  the replicates are paired across models), :data:`REPLICATES` Poisson(1) bootstrap
  replicates, percentile intervals. The point values beside them are gold.metrics' AUCs of all
  the eval rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from relisten_spark.runtime import STACK

BOOTSTRAP_ROWS = 20_000
REPLICATES = 200
SEED = 7
GAIN = "gain (stack - best single)"


def eval_rows(preds: DataFrame) -> pd.DataFrame:
    """``[profile, split_mode, model, rows, positive_rate, idx_min, idx_max]`` of ``preds``
    (gold.predictions' eval rows)."""
    out: pd.DataFrame = (
        preds.groupBy("profile", "split_mode", "model")
        .agg(
            F.count("*").alias("rows"),
            F.avg("target").alias("positive_rate"),
            F.min("idx").alias("idx_min"),
            F.max("idx").alias("idx_max"),
        )
        .orderBy("profile", "split_mode", "model")
        .toPandas()  # one row per profile x split mode x model
    )
    return out


def paired_sample(preds: DataFrame, models: Sequence[str], rows: int = BOOTSTRAP_ROWS) -> pd.DataFrame:
    """``[target, <one score column per model>]``: at most about ``rows`` events of ``preds``
    (one profile and split mode), each with every model's score (null where a model has none)."""
    wide = preds.groupBy("idx", "target").pivot("model", list(models)).agg(F.first("score"))
    total = wide.count()
    fraction = min(1.0, rows / total) if total else 1.0
    sample: pd.DataFrame = wide.sample(fraction=fraction, seed=SEED).limit(rows).toPandas()  # <= rows
    return sample.drop(columns="idx")


def weighted_auc(score: np.ndarray, target: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC-AUC of ``score`` against ``target`` under each row of ``weights`` ``[replicates,
    rows]`` (Mann-Whitney, tied scores counted one half, as :mod:`relisten_spark.metrics`)."""
    order = np.argsort(score, kind="stable")
    s, t, w = score[order], target[order].astype(np.float64), weights[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    pos = np.add.reduceat(w * t, starts, axis=1)
    neg = np.add.reduceat(w * (1.0 - t), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray((pos * (below + neg / 2.0)).sum(axis=1) / (n_pos * n_neg))


def _replicates(sample: pd.DataFrame, model: str, weights: np.ndarray) -> np.ndarray:
    present = sample[model].notna().to_numpy()
    score = sample[model].to_numpy(dtype=np.float64, na_value=np.nan)[present]
    return weighted_auc(score, sample["target"].to_numpy()[present], weights[:, present])


def bootstrap_auc(sample: pd.DataFrame, models: Sequence[str], best_single: str | None) -> pd.DataFrame:
    """``[name, low, high, rows]``: the 95 % percentile interval of each model's AUC over
    :data:`REPLICATES` Poisson bootstrap replicates of ``sample`` (:func:`paired_sample`), and of
    the stack's gain over ``best_single`` on the events both scored (None: no gain row); models
    without a score in ``sample`` get no row."""
    rng = np.random.default_rng(SEED)
    weights = rng.poisson(1.0, size=(REPLICATES, len(sample))).astype(np.float64)
    scored = [m for m in models if m in sample and sample[m].notna().any()]
    rows = []
    for model in scored:
        aucs = _replicates(sample, model, weights)
        rows.append((model, *np.nanpercentile(aucs, [2.5, 97.5]), int(sample[model].notna().sum())))
    if best_single in scored and STACK in scored:
        mask = (sample[STACK].notna() & sample[best_single].notna()).to_numpy()
        both, paired = sample[mask], weights[:, mask]
        if len(both):
            gain = _replicates(both, STACK, paired) - _replicates(both, str(best_single), paired)
            rows.append((GAIN, *np.nanpercentile(gain, [2.5, 97.5]), len(both)))
    return pd.DataFrame(rows, columns=["name", "low", "high", "rows"])
