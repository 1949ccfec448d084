"""Spark ML's implicit ALS (``pyspark.ml.recommendation.ALS``, ``implicitPrefs=True``) as a
retrieval baseline: Spark's own answer to "which songs for every user".

The confidence of a (user, song) pair is its number of rows; users and songs get dense integer
ids (ALS needs them). The factors come back keyed by ``msno`` / ``song_id`` and are ranked by
:func:`relisten_spark.retrieval.nearest.factor_top_k`, the same exact blocked top-K (and heard
exclusion) as every other model: ``ALSModel.recommendForAllUsers`` cannot leave out the songs a
user already heard, so its lists would need a margin and could still come up short.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.ml.recommendation import ALS
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from relisten_spark.retrieval.sequences import dense_index


@dataclass(frozen=True)
class AlsSettings:
    """ALS hyper-parameters (implicit feedback)."""

    rank: int = 64
    max_iter: int = 10
    reg_param: float = 0.05
    alpha: float = 10.0
    seed: int = 42


def als_vectors(rows: DataFrame, settings: AlsSettings | None = None) -> tuple[DataFrame, DataFrame]:
    """(users ``[msno, vector]``, items ``[song_id, vector]``): the factors of implicit ALS fit on
    ``rows`` ``[msno, song_id, ...]`` (confidence = rows per pair)."""
    s = settings or AlsSettings()
    users = dense_index(rows, "msno", "_user", start=0)
    items = dense_index(rows, "song_id", "_item", start=0)
    counts = (
        rows.groupBy("msno", "song_id")
        .agg(F.count("*").cast("float").alias("_plays"))
        .join(users, "msno")
        .join(items, "song_id")
    )
    als = ALS(
        rank=s.rank,
        maxIter=s.max_iter,
        regParam=s.reg_param,
        alpha=s.alpha,
        implicitPrefs=True,
        userCol="_user",
        itemCol="_item",
        ratingCol="_plays",
        coldStartStrategy="drop",
        seed=s.seed,
    )
    model = als.fit(counts)
    user_vectors = model.userFactors.join(users, F.col("id") == F.col("_user")).select(
        "msno", F.col("features").cast("array<float>").alias("vector")
    )
    item_vectors = model.itemFactors.join(items, F.col("id") == F.col("_item")).select(
        "song_id", F.col("features").cast("array<float>").alias("vector")
    )
    return user_vectors, item_vectors
