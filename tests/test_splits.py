"""The evaluation protocol: time-ordered fit / calib / eval, random only when asked."""

from __future__ import annotations

import pytest
from pyspark.sql import types as T

from relisten_spark.config import EvaluationConfig
from relisten_spark.splits import assign_eval_split, holdout_cutoff

pytestmark = pytest.mark.spark

SCHEMA = T.StructType([T.StructField("idx", T.LongType()), T.StructField("split", T.StringType())])


def _events(spark, n_train: int, n_test: int):
    rows = [(i, "train") for i in range(n_train)] + [(n_train + i, "test") for i in range(n_test)]
    return spark.createDataFrame(rows, SCHEMA)


def test_time_split_is_ordered_by_idx(spark) -> None:
    out = assign_eval_split(_events(spark, 100, 5), EvaluationConfig()).orderBy("idx").collect()
    parts = [r.eval_split for r in out]
    assert parts == ["fit"] * 80 + ["calib"] * 10 + ["eval"] * 10 + ["test"] * 5
    assert {r.split_mode for r in out} == {"time"}


def test_cutoff_is_first_holdout_idx(spark) -> None:
    assert holdout_cutoff(_events(spark, 100, 5), EvaluationConfig(holdout_fraction=0.3)) == 70


def test_random_split_is_labelled_and_keeps_proportions(spark) -> None:
    cfg = EvaluationConfig(split="random", seed=3)
    out = assign_eval_split(_events(spark, 2000, 10), cfg)
    counts = {r.eval_split: r["count"] for r in out.groupBy("eval_split").count().collect()}
    assert counts["test"] == 10
    assert 1500 < counts["fit"] < 1700
    assert {r.split_mode for r in out.select("split_mode").distinct().collect()} == {"random"}
    holdout = [r.idx for r in out.where("eval_split = 'eval'").collect()]
    assert min(holdout) < 1000  # not the time tail
