"""The popularity baseline: fit-period play counts, calibrated by a one-feature logistic regression."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from relisten_spark.models.baseline import calibration, popularity_scores, song_plays

pytestmark = pytest.mark.spark

SCHEMA = "idx long, msno string, song_id string, target int, eval_split string, split_mode string"
FIT = [
    ("s1", 1),
    ("s1", 1),
    ("s1", 1),
    ("s1", 0),
    ("s2", 1),
    ("s2", 0),
    ("s3", 0),
    ("s4", 1),
    ("s4", 0),
    ("s4", 0),
]
HOLDOUT = [
    (10, "u1", "s1", 0, "calib"),
    (11, "u2", "s2", 1, "eval"),
    (12, "u3", "s5", 0, "eval"),  # never played in the fit period
    (13, "u1", "s4", None, "test"),
]


def _split(spark):
    rows = [(i, f"u{i % 3}", song, t, "fit", "time") for i, (song, t) in enumerate(FIT)]
    rows += [(*r, "time") for r in HOLDOUT]
    return spark.createDataFrame(rows, SCHEMA)


def test_calibration_is_the_logistic_regression_of_target_on_log_plays(spark):
    split = _split(spark)
    plays = song_plays(split)
    assert {r["song_id"]: r["plays"] for r in plays.collect()} == {"s1": 4, "s2": 2, "s3": 1, "s4": 3}
    a, b = calibration(split, plays)
    counts = {"s1": 4, "s2": 2, "s3": 1, "s4": 3}
    x = np.round(np.log1p([[counts[s]] for s, _ in FIT]), 2)
    y = [t for _, t in FIT]
    reference = LogisticRegression(penalty=None, tol=1e-10, max_iter=1000).fit(x, y)
    assert a == pytest.approx(reference.intercept_[0], abs=1e-4)
    assert b == pytest.approx(reference.coef_[0][0], abs=1e-4)
    assert b > 0


def test_scores_rank_songs_by_fit_plays(spark):
    got = popularity_scores(_split(spark)).orderBy("idx").collect()
    assert [(r["idx"], r["song_id"], r["eval_split"], r["target"]) for r in got] == [
        (10, "s1", "calib", 0),
        (11, "s2", "eval", 1),
        (12, "s5", "eval", 0),
        (13, "s4", "test", None),
    ]
    score = {r["song_id"]: r["score"] for r in got}
    assert score["s1"] > score["s4"] > score["s2"] > score["s5"] > 0
    assert all(0 < s < 1 for s in score.values())
    assert {r["split_mode"] for r in got} == {"time"}
