"""scikit-learn's values of the binary metrics of ``relisten_spark.metrics.METRIC_NAMES``: the
reference the Spark metrics and ``relisten evaluate`` are checked against."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm


def sklearn_metrics(
    labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray
) -> dict[str, float]:
    """``{metric: value}`` of ``scores`` against 0/1 ``labels``; the label metrics at score >= 0.5."""
    y, s = np.asarray(labels), np.asarray(scores)
    pred = (s >= 0.5).astype(int)
    return {
        "roc_auc": skm.roc_auc_score(y, s),
        "pr_auc": skm.average_precision_score(y, s),
        "logloss": skm.log_loss(y, s),
        "accuracy": skm.accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred, zero_division=0),
        "recall": skm.recall_score(y, pred, zero_division=0),
        "f1": skm.f1_score(y, pred, zero_division=0),
    }
