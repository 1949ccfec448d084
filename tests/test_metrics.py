"""Metrics computed in Spark agree with scikit-learn on the same rows, ties included."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from reference_metrics import sklearn_metrics
from sklearn import metrics as skm

from relisten_spark.metrics import (
    LOGLOSS_EPS,
    METRIC_NAMES,
    binary_metrics,
    calibration_curve,
    roc_curve,
)

pytestmark = pytest.mark.spark

SCHEMA = "model string, score double, target int"

# Two groups; "a" has ties across classes (0.7 twice with different labels, 0.3 three times),
# a score exactly at the 0.5 threshold, and one unlabelled (test) row that must be ignored.
ROWS = [
    ("a", 0.9, 1),
    ("a", 0.7, 1),
    ("a", 0.7, 0),
    ("a", 0.5, 1),
    ("a", 0.3, 0),
    ("a", 0.3, 1),
    ("a", 0.3, 0),
    ("a", 0.1, 0),
    ("a", 0.6, None),
    ("b", 0.2, 1),
    ("b", 0.4, 0),
    ("b", 0.4, 1),
    ("b", 0.8, 0),
]


def _as_dict(rows: list) -> dict[tuple[str, str], float]:
    return {(r["model"], r["metric"]): r["value"] for r in rows}


def test_binary_metrics_match_sklearn_with_ties(spark):
    # Group "c" has one class only (AUC undefined), group "d" certain mistakes (logloss clipped).
    edge = [("c", 0.4, 1), ("c", 0.6, 1), ("d", 0.0, 1), ("d", 1.0, 1), ("d", 1.0, 0)]
    df = spark.createDataFrame(ROWS + edge, SCHEMA)
    got = _as_dict(binary_metrics(df, ["model"]).collect())
    assert set(got) == {(m, k) for m in "abcd" for k in METRIC_NAMES}
    for model in "ab":
        labelled = [(s, t) for m, s, t in ROWS if m == model and t is not None]
        expected = sklearn_metrics([t for _, t in labelled], [s for s, _ in labelled])
        for metric, value in expected.items():
            assert got[(model, metric)] == pytest.approx(value, abs=1e-12), (model, metric)
    assert got[("c", "roc_auc")] is None
    assert got[("c", "pr_auc")] == pytest.approx(1.0)
    assert got[("c", "recall")] == pytest.approx(0.5)
    assert math.isfinite(got[("d", "logloss")])
    assert got[("d", "logloss")] == pytest.approx(-2 * math.log(LOGLOSS_EPS) / 3, rel=1e-9)
    assert got[("d", "logloss")] == pytest.approx(skm.log_loss([1, 1, 0], [0.0, 1.0, 1.0]), rel=1e-9)


def test_binary_metrics_without_groups_and_many_ties(spark):
    rng = np.random.default_rng(3)
    n = 3000
    labels = rng.integers(0, 2, n)
    # Scores rounded to 2 decimals: hundreds of tied values spanning both classes and many buckets.
    scores = np.round(np.clip(0.35 + 0.3 * labels + rng.normal(0, 0.2, n), 0, 1), 2)
    pdf = pd.DataFrame({"model": "m", "score": scores, "target": labels.astype("int32")})
    got = {r["metric"]: r["value"] for r in binary_metrics(spark.createDataFrame(pdf, SCHEMA)).collect()}
    expected = sklearn_metrics(labels, scores)
    assert got == pytest.approx(expected, abs=1e-9)


def test_roc_curve_points_lie_on_sklearn_curve(spark):
    df = spark.createDataFrame(ROWS, SCHEMA)
    curve = roc_curve(df, ["model"], points=100).where("model = 'a'").orderBy("fpr", "tpr").collect()
    labelled = [(s, t) for m, s, t in ROWS if m == "a" and t is not None]
    fpr, tpr, thr = skm.roc_curve([t for _, t in labelled], [s for s, _ in labelled], drop_intermediate=False)
    expected = {(round(f, 12), round(t, 12)) for f, t in zip(fpr, tpr, strict=True)}
    got = {(round(r["fpr"], 12), round(r["tpr"], 12)) for r in curve}
    # With fewer distinct scores than points every threshold is kept: the curves coincide.
    assert got == expected
    assert {r["threshold"] for r in curve if r["threshold"] is not None} == set(thr[1:])


def test_calibration_curve_bins(spark):
    df = spark.createDataFrame(ROWS, SCHEMA)
    got = calibration_curve(df, ["model"], bins=2).where("model = 'b'").orderBy("bin").collect()
    assert [(r["bin"], r["rows"]) for r in got] == [(0, 3), (1, 1)]
    assert got[0]["mean_score"] == pytest.approx(1.0 / 3)
    assert got[0]["positive_rate"] == pytest.approx(2.0 / 3)
    assert got[1]["positive_rate"] == pytest.approx(0.0)
