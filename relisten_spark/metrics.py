"""Binary-classification metrics computed in Spark over a predictions frame.

Every function takes a frame ``[*group_cols, score double, target int]`` (other columns are
ignored), drops rows whose ``target`` or ``score`` is null or NaN (test rows), and works per
group (e.g. ``model, profile, split_mode, eval_split``); group values must not be null. No
per-row data reaches the driver: the results hold one row per group and metric, or a few
hundred points per group for the curves.

Definitions (they match scikit-learn's on the same rows, ties included):

* ``roc_auc`` — the Mann-Whitney statistic with tied scores counted one half:
  ``sum over distinct scores s of pos(s) * (neg(< s) + neg(s) / 2) / (P * N)``;
  null when a group has no positive or no negative row;
* ``pr_auc`` — average precision, the step-wise area under the precision-recall curve:
  ``sum over s of pos(s) / P * precision(score >= s)``;
* ``logloss`` — mean binary cross-entropy with the score clipped to
  ``[LOGLOSS_EPS, 1 - LOGLOSS_EPS]``;
* ``accuracy``, ``precision``, ``recall``, ``f1`` — of the labels ``score >= THRESHOLD``;
  precision, recall and F1 are 0 where their denominator is 0.

The cumulative counts ``pos(< s)``, ``neg(< s)`` come from window sums in two levels, so no
window holds a whole group: scores fall into ``_BUCKETS`` value buckets; a small window over
the buckets gives each bucket's offset, and a window partitioned by bucket adds the counts of
smaller scores inside it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

METRIC_NAMES = ("roc_auc", "pr_auc", "logloss", "accuracy", "precision", "recall", "f1")
LOGLOSS_EPS = float(np.finfo(np.float64).eps)  # as scikit-learn clips
THRESHOLD = 0.5
_BUCKETS = 1024
_ALL = "_all"


def _labelled(preds: DataFrame, group_cols: Sequence[str], score_col: str, label_col: str) -> DataFrame:
    """``[*group_cols, _s double, _y int]``: labelled rows with a numeric score."""
    score = F.col(score_col).cast("double")
    return preds.where(F.col(label_col).isNotNull() & score.isNotNull() & ~F.isnan(score)).select(
        *group_cols, score.alias("_s"), F.col(label_col).cast("int").alias("_y")
    )


def _groups(group_cols: Sequence[str]) -> list[str]:
    return list(group_cols) or [_ALL]


def _with_all(df: DataFrame, group_cols: Sequence[str]) -> DataFrame:
    return df if group_cols else df.withColumn(_ALL, F.lit(0))


def _without_all(df: DataFrame, group_cols: Sequence[str]) -> DataFrame:
    """Undo :func:`_with_all`: the result of an ungrouped call carries no group column."""
    return df if group_cols else df.drop(_ALL)


def _bin(score: Column, bins: int) -> Column:
    """The equal-width bin ``0..bins-1`` of a score in ``[0, 1]`` (1 in the last bin; scores
    outside the range in the end bins)."""
    return F.least(F.greatest(F.floor(score * bins), F.lit(0)), F.lit(bins - 1)).cast("int")


def score_counts(
    preds: DataFrame, group_cols: Sequence[str] = (), score_col: str = "score", label_col: str = "target"
) -> DataFrame:
    """Per group and distinct score: positives and negatives at it, strictly below it, and in all.

    Returns ``[*group_cols, _s, _p, _n, _p_lt, _n_lt, _pos_all, _neg_all]`` (``_s`` the score;
    ``_p``/``_n`` rows with that score; ``_p_lt``/``_n_lt`` rows with a smaller score in the
    group; ``_pos_all``/``_neg_all`` the group's totals).
    """
    g = _groups(group_cols)
    labelled = _with_all(_labelled(preds, group_cols, score_col, label_col), group_cols)
    by_score = (
        labelled.withColumn("_b", _bin(F.col("_s"), _BUCKETS))
        .groupBy(*g, "_b", "_s")
        .agg(F.sum("_y").cast("long").alias("_p"), F.sum(1 - F.col("_y")).cast("long").alias("_n"))
    )
    below = Window.partitionBy(*g).orderBy("_b").rowsBetween(Window.unboundedPreceding, -1)
    whole = Window.partitionBy(*g)
    offsets = (
        by_score.groupBy(*g, "_b")
        .agg(F.sum("_p").alias("_bp"), F.sum("_n").alias("_bn"))
        .select(
            *g,
            "_b",
            F.coalesce(F.sum("_bp").over(below), F.lit(0)).alias("_po"),
            F.coalesce(F.sum("_bn").over(below), F.lit(0)).alias("_no"),
            F.sum("_bp").over(whole).alias("_pos_all"),
            F.sum("_bn").over(whole).alias("_neg_all"),
        )
    )
    inside = Window.partitionBy(*g, "_b").orderBy("_s").rowsBetween(Window.unboundedPreceding, -1)
    out = by_score.join(F.broadcast(offsets), [*g, "_b"]).select(
        *g,
        "_s",
        "_p",
        "_n",
        (F.col("_po") + F.coalesce(F.sum("_p").over(inside), F.lit(0))).alias("_p_lt"),
        (F.col("_no") + F.coalesce(F.sum("_n").over(inside), F.lit(0))).alias("_n_lt"),
        "_pos_all",
        "_neg_all",
    )
    return _without_all(out, group_cols)


def _ratio(num: Column, den: Column) -> Column:
    return F.when(den > 0, num.cast("double") / den.cast("double")).otherwise(F.lit(0.0))


def binary_metrics(
    preds: DataFrame, group_cols: Sequence[str] = (), score_col: str = "score", label_col: str = "target"
) -> DataFrame:
    """The seven metrics of :data:`METRIC_NAMES` per group, long format.

    ``preds``: ``[*group_cols, score, target, ...]``. Returns ``[*group_cols, metric string,
    value double]`` with one row per group and metric (definitions in the module docstring).
    Every metric comes from one aggregate over the per-score counts of :func:`score_counts`.
    """
    g = _groups(group_cols)
    counts = _with_all(score_counts(preds, group_cols, score_col, label_col), group_cols)
    pos, neg = F.col("_p"), F.col("_n")
    pos_all, neg_all = F.col("_pos_all"), F.col("_neg_all")
    tp_at = pos_all - F.col("_p_lt")
    fp_at = neg_all - F.col("_n_lt")
    clipped = F.least(F.greatest(F.col("_s"), F.lit(LOGLOSS_EPS)), F.lit(1.0 - LOGLOSS_EPS))
    hit = F.col("_s") >= THRESHOLD
    sums = counts.groupBy(*g).agg(
        F.first("_pos_all").alias("_P_all"),
        F.first("_neg_all").alias("_N_all"),
        F.sum(pos * (F.col("_n_lt") + neg / 2.0)).alias("_u"),
        F.sum(pos * tp_at / (tp_at + fp_at)).alias("_ap"),
        F.sum(pos * F.log(clipped) + neg * F.log(1 - clipped)).alias("_ll"),
        F.sum(F.when(hit, pos).otherwise(0)).alias("_tp"),
        F.sum(F.when(hit, neg).otherwise(0)).alias("_fp"),
        F.sum(F.when(hit, 0).otherwise(pos)).alias("_fn"),
        F.sum(F.when(hit, 0).otherwise(neg)).alias("_tn"),
    )
    n_pos, n_neg, rows = F.col("_P_all"), F.col("_N_all"), F.col("_P_all") + F.col("_N_all")
    tp, fp, fn, tn = F.col("_tp"), F.col("_fp"), F.col("_fn"), F.col("_tn")
    wide = sums.select(
        *g,
        F.when((n_pos > 0) & (n_neg > 0), F.col("_u") / (n_pos * n_neg).cast("double")).alias("roc_auc"),
        F.when(n_pos > 0, F.col("_ap") / n_pos).alias("pr_auc"),
        (-F.col("_ll") / rows).alias("logloss"),
        _ratio(tp + tn, rows).alias("accuracy"),
        _ratio(tp, tp + fp).alias("precision"),
        _ratio(tp, tp + fn).alias("recall"),
        _ratio(2 * tp, 2 * tp + fp + fn).alias("f1"),
    )
    long = wide.unpivot(tuple(g), METRIC_NAMES, "metric", "value").select(
        *g, "metric", F.col("value").cast("double").alias("value")
    )
    return _without_all(long, group_cols)


def roc_curve(
    preds: DataFrame,
    group_cols: Sequence[str] = (),
    points: int = 100,
    score_col: str = "score",
    label_col: str = "target",
) -> DataFrame:
    """A ROC curve with about ``points`` points per group, for plots.

    Returns ``[*group_cols, threshold double, fpr double, tpr double]``: the rates of the rule
    ``score >= threshold``, at thresholds spread evenly over the ranked rows, plus the end
    point ``(1, 1)`` (threshold = the smallest score) and the start ``(0, 0)`` (threshold null).
    """
    g = _groups(group_cols)
    counts = _with_all(score_counts(preds, group_cols, score_col, label_col), group_cols)
    pos_all, neg_all = F.col("_pos_all"), F.col("_neg_all")
    rated = counts.select(
        *g,
        "_s",
        _ratio(neg_all - F.col("_n_lt"), neg_all).alias("fpr"),
        _ratio(pos_all - F.col("_p_lt"), pos_all).alias("tpr"),
        F.floor((F.col("_p_lt") + F.col("_n_lt")) * points / (pos_all + neg_all)).alias("_bin"),
    )
    sampled = rated.groupBy(*g, "_bin").agg(
        F.min("_s").alias("threshold"), F.min_by("fpr", "_s").alias("fpr"), F.min_by("tpr", "_s").alias("tpr")
    )
    start = (
        counts.select(*g)
        .distinct()
        .select(
            *g,
            F.lit(None).cast("double").alias("threshold"),
            F.lit(0.0).alias("fpr"),
            F.lit(0.0).alias("tpr"),
        )
    )
    out = sampled.select(*g, "threshold", "fpr", "tpr").unionByName(start)
    return _without_all(out, group_cols)


def calibration_curve(
    preds: DataFrame,
    group_cols: Sequence[str] = (),
    bins: int = 10,
    score_col: str = "score",
    label_col: str = "target",
) -> DataFrame:
    """Reliability diagram data: ``bins`` equal-width score bins per group.

    Returns ``[*group_cols, bin int, rows long, mean_score double, positive_rate double]``
    for the non-empty bins (``bin`` k covers ``[k/bins, (k+1)/bins)``, the last one includes 1).
    """
    g = _groups(group_cols)
    labelled = _with_all(_labelled(preds, group_cols, score_col, label_col), group_cols)
    out = (
        labelled.withColumn("bin", _bin(F.col("_s"), bins))
        .groupBy(*g, "bin")
        .agg(
            F.count("*").alias("rows"),
            F.avg("_s").alias("mean_score"),
            F.avg(F.col("_y").cast("double")).alias("positive_rate"),
        )
    )
    return _without_all(out, group_cols)
