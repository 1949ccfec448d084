"""Top-N list metrics computed in Spark: the retriever's full-ranking lists, the candidates and
the backtest of the recommendation lists all use them.

Definitions (binary relevance; a user's relevant set is the distinct items of their target rows):

* ``hr@K`` — share of users with at least one relevant item in their top K;
* ``recall@K`` — mean over users of ``|relevant in top K| / |relevant|``;
* ``ndcg@K`` — mean over users of ``DCG@K / IDCG@K`` with ``DCG = sum 1 / log2(rank + 1)`` over
  the relevant items in the top K and ``IDCG`` the same sum over ranks ``1 .. min(|relevant|, K)``;
* ``mrr`` — mean over users of ``1 / rank`` of the first relevant item of the whole list (0 if none);
* ``event_recall@K`` — share of target events (duplicates count) whose item is in the user's top K.

Users are those with at least one relevant item (within their group); a user with relevant items
but no list counts as 0. No per-user data reaches the driver.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def _discount(rank: Column) -> Column:
    return F.lit(1.0) / F.log2(rank.cast("double") + F.lit(1.0))


def _ideal_dcg(n_relevant: Column, k: int) -> Column:
    """``sum_{i=1}^{min(n, k)} 1 / log2(i + 1)``."""
    ranks = F.sequence(F.lit(1), F.least(n_relevant, F.lit(k)))
    return F.aggregate(ranks, F.lit(0.0), lambda acc, i: acc + _discount(i))


def _long(wide: DataFrame, group_cols: Sequence[str], metrics: Sequence[str]) -> DataFrame:
    """``[*group_cols, *metrics]`` -> ``[*group_cols, metric, value]``."""
    pairs = F.array(*[F.struct(F.lit(m).alias("metric"), F.col(f"`{m}`").alias("value")) for m in metrics])
    return wide.select(*group_cols, F.explode(pairs).alias("m")).select(
        *group_cols, F.col("m.metric").alias("metric"), F.col("m.value").cast("double").alias("value")
    )


def ranking_metrics(
    recs: DataFrame,
    relevant: DataFrame,
    ks: Sequence[int],
    group_cols: Sequence[str] = (),
    user: str = "msno",
    item: str = "song_id",
) -> DataFrame:
    """``hr@K``, ``recall@K``, ``ndcg@K`` for each K and ``mrr``, per group.

    ``recs`` ``[*group_cols, user, item, rank int]`` (rank 1 = best, items unique per list);
    ``relevant`` ``[*group_cols, user, item]`` (duplicates ignored). Returns
    ``[*group_cols, metric string, value double]``.
    """
    keys = [*group_cols, user]
    truth = relevant.select(*keys, item).distinct()
    n_rel = truth.groupBy(*keys).agg(F.count("*").alias("_n"))
    hits = recs.select(*keys, item, F.col("rank").cast("int").alias("_rank")).join(truth, [*keys, item])
    per_k = []
    for k in ks:
        within = F.col("_rank") <= F.lit(k)
        per_k += [
            F.sum(F.when(within, 1).otherwise(0)).alias(f"_hits{k}"),
            F.sum(F.when(within, _discount(F.col("_rank"))).otherwise(0.0)).alias(f"_dcg{k}"),
        ]
    found = hits.groupBy(*keys).agg(F.min("_rank").alias("_first"), *per_k)
    users = n_rel.join(found, keys, "left").na.fill(0, [f"_hits{k}" for k in ks]).na.fill(0.0)
    aggs: list[Column] = []
    for k in ks:
        hit_k = F.col(f"_hits{k}")
        aggs += [
            F.avg(F.when(hit_k > 0, 1.0).otherwise(0.0)).alias(f"hr@{k}"),
            F.avg(hit_k / F.col("_n")).alias(f"recall@{k}"),
            F.avg(F.col(f"_dcg{k}") / _ideal_dcg(F.col("_n"), k)).alias(f"ndcg@{k}"),
        ]
    aggs.append(F.avg(F.when(F.col("_first") > 0, 1.0 / F.col("_first")).otherwise(0.0)).alias("mrr"))
    wide = users.groupBy(*group_cols).agg(*aggs)
    names = [f"{m}@{k}" for k in ks for m in ("hr", "recall", "ndcg")] + ["mrr"]
    return _long(wide, group_cols, names)


def event_recall(
    recs: DataFrame,
    events: DataFrame,
    k: int,
    group_cols: Sequence[str] = (),
    user: str = "msno",
    item: str = "song_id",
) -> DataFrame:
    """``event_recall@k`` per group: the share of ``events`` ``[*group_cols, user, item]`` (one row
    per event) whose item is in the user's top ``k`` of ``recs`` ``[*group_cols, user, item, rank]``.
    Returns ``[*group_cols, metric, value]``."""
    keys = [*group_cols, user, item]
    top = recs.where(F.col("rank") <= F.lit(k)).select(*keys).distinct().withColumn("_in", F.lit(1.0))
    joined = events.select(*keys).join(top, keys, "left")
    wide = joined.groupBy(*group_cols).agg(
        F.avg(F.coalesce(F.col("_in"), F.lit(0.0))).alias(f"event_recall@{k}")
    )
    return _long(wide, group_cols, [f"event_recall@{k}"])
