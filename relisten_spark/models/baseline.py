"""The popularity baseline: how often a song was played in the fit period.

Score of an event = ``sigmoid(a + b * log1p(plays))`` where ``plays`` is the number of *fit*
rows of the event's song (0 for a song never played there). The ranking, hence ROC-AUC and
PR-AUC, depends on ``plays`` only; ``a`` and ``b`` are a one-feature logistic regression of
``target`` on ``log1p(plays)`` over the fit rows, which only calibrates the score into a
probability so that log-loss and the 0.5-threshold metrics mean something. Spark aggregates
the fit rows by ``(round(log1p(plays), 2), target)``, a table of at most a few thousand rows
whatever the data size (``log1p`` of any play count is below 25), and the driver fits the
regression on it with the row counts as weights.

``relisten evaluate`` trains it (:func:`train_baseline`) for every profile it evaluates, so every
model is compared with it whichever stages ran. It is written to gold.predictions as model
``popularity`` for ``calib``, ``eval`` and ``test`` rows; its version is the silver.features
version it was counted on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from sklearn.linear_model import LogisticRegression

from relisten_spark import lake
from relisten_spark.config import Config
from relisten_spark.errors import InputError
from relisten_spark.models.feature_inputs import features_path
from relisten_spark.predictions import PREDICTION_KEYS, write_predictions
from relisten_spark.runtime import POPULARITY
from relisten_spark.splits import assign_eval_split

log = logging.getLogger(__name__)


def song_plays(split: DataFrame) -> DataFrame:
    """``[song_id, plays long]``: fit rows per song. ``split``: ``[song_id, eval_split, ...]``."""
    return split.where(F.col("eval_split") == "fit").groupBy("song_id").agg(F.count("*").alias("plays"))


def calibration(split: DataFrame, plays: DataFrame) -> tuple[float, float]:
    """``(a, b)`` of ``P(target) = sigmoid(a + b * log1p(plays))`` fitted on the fit rows."""
    fit = split.where(F.col("eval_split") == "fit").join(plays, "song_id", "left")
    x = F.round(F.log1p(F.coalesce(F.col("plays"), F.lit(0))), 2)
    grouped = (
        fit.groupBy(x.alias("x"), F.col("target").alias("y")).agg(F.count("*").alias("w")).collect()
    )  # bounded: distinct rounded log counts x 2 labels
    if len({int(r["y"]) for r in grouped}) < 2:
        raise InputError("the popularity baseline needs positive and negative fit rows")
    model = LogisticRegression(penalty=None, tol=1e-10, max_iter=1000).fit(
        np.array([[r["x"]] for r in grouped]),
        [int(r["y"]) for r in grouped],
        sample_weight=[r["w"] for r in grouped],
    )
    return float(model.intercept_[0]), float(model.coef_[0][0])


def popularity_scores(split: DataFrame) -> DataFrame:
    """Baseline predictions for the holdout and test rows.

    ``split``: ``[idx, msno, song_id, target, eval_split, split_mode, ...]`` (every row, fit
    included, as :func:`~relisten_spark.splits.assign_eval_split` returns).
    Returns ``[idx, msno, song_id, eval_split, split_mode, target, score]`` for calib, eval
    and test rows.
    """
    plays = song_plays(split)
    a, b = calibration(split, plays)
    x = F.log1p(F.coalesce(F.col("plays"), F.lit(0)))
    return (
        split.where(F.col("eval_split").isin("calib", "eval", "test"))
        .join(plays, "song_id", "left")
        .select(*PREDICTION_KEYS, (1.0 / (1.0 + F.exp(-(F.lit(a) + F.lit(b) * x)))).alias("score"))
    )


def train_baseline(spark: SparkSession, cfg: Config, profiles: Iterable[str], run_id: str) -> dict[str, str]:
    """Replace the baseline's gold.predictions rows of each of ``profiles`` found in silver.features,
    split by ``cfg.evaluation`` as the trainers split it; returns ``{profile: baseline version}``.

    Profiles that silver.features does not hold (or no silver.features at all) are skipped with a
    warning: their models are evaluated without a baseline.
    """
    path = features_path(cfg)
    if not lake.exists(path):
        log.warning("no features table at %s: the popularity baseline is not trained", path)
        return {}
    version = f"features-v{lake.version(path)}"
    trained: dict[str, str] = {}
    for profile in sorted(set(profiles)):
        if not lake.file_uris(path, where={"profile": profile}):
            log.warning("silver.features has no profile '%s': no popularity baseline for it", profile)
            continue
        split = assign_eval_split(lake.read(spark, path, where={"profile": profile}), cfg.evaluation)
        write_predictions(spark, cfg, popularity_scores(split), POPULARITY, version, profile, run_id)
        trained[profile] = version
    return trained
