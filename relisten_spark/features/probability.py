"""Conditional shares P(value | entity): the share of an entity's rows that carry this row's value.

FEATURES.md uses them in step 2 (``msno_source_{col}_prob``) and step 8 (``msno_{f}_prob``,
``song_{c}_prob``). A null value is a group of its own (rows with a null value share among
themselves).
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from relisten_spark.features.timeline import require_columns


def add_conditional_share(
    ev: DataFrame,
    entity: str,
    value: str,
    out: str,
    serving: bool,
    basis: Column | None = None,
) -> DataFrame:
    """``ev`` + ``out`` (double) = P(``value`` = this row's value | ``entity``).

    ``ev``: ``[idx long, <entity>, <value>, ...]``. ``basis`` (default: every row) selects the
    rows that are counted; every row gets an output.

    * full (BATCH): (#basis rows of the entity with the row's value) / (#basis rows of the
      entity); the row itself is counted when it is a basis row.
    * serving: the same over the entity's basis rows with a strictly smaller ``idx``.

    The share is null when the denominator is 0 (serving: the entity's first event). Both
    counts are window aggregates: rows hash-partitioned by ``entity`` satisfy the
    ``(entity, value)`` partitioning too, so calls on one entity share one shuffle.
    """
    require_columns(ev, ["idx", entity, value], "add_conditional_share")
    counted = F.lit(1) if basis is None else F.when(basis, F.lit(1))
    same_frame, entity_frame = Window.partitionBy(entity, value), Window.partitionBy(entity)
    if serving:
        same_frame = same_frame.orderBy("idx").rangeBetween(Window.unboundedPreceding, -1)
        entity_frame = entity_frame.orderBy("idx").rangeBetween(Window.unboundedPreceding, -1)
    total = F.count(counted).over(entity_frame)
    same = F.count(counted).over(same_frame)
    return ev.select("*", (same / F.when(total > 0, total)).alias(out))


def add_batch_shares(
    ev: DataFrame,
    entity: str,
    shares: Mapping[str, str],
    basis: Column | None = None,
    counted: DataFrame | None = None,
) -> DataFrame:
    """``ev`` + one BATCH share column per ``shares`` item (output name -> value column): the
    full-profile values of :func:`add_conditional_share`, computed from aggregate tables.

    The windows of :func:`add_conditional_share` sort the whole frame once per value column;
    here each share is a ``groupBy(entity, value)`` count table and one entity-total table,
    broadcast-joined back (null values match null values), so the frame is never sorted; an
    int value column joins on one bigint pair key (:func:`_pair_key`).
    ``ev``: ``[<entity> (an int entity: a non-negative code), <value columns> ...]``.
    ``counted``: a frame with the same rows whose plan has no joins (default ``ev``): when ``ev``
    already carries lookups, pass the frame before them, since Spark never prunes a left join and
    would re-run them for every table.
    """
    require_columns(ev, [entity, *shares.values()], "add_batch_shares")
    counted = ev if counted is None else counted
    counted = counted if basis is None else counted.where(basis)
    totals = counted.groupBy(F.col(entity).alias("_e")).agg(F.count(F.lit(1)).alias("_total"))
    out = ev.join(F.broadcast(totals), ev[entity] == F.col("_e"), "left").drop("_e")
    types = dict(ev.dtypes)
    for name, value in shares.items():
        if types[value] in _INT_TYPES and types[entity] in _INT_TYPES:
            pair_key = _pair_key(F.col(entity), F.col(value))
            grouped = counted.groupBy(pair_key.alias("_k"))
            on = pair_key == F.col("_k")
        else:
            grouped = counted.groupBy(F.col(entity).alias("_e"), F.col(value).alias("_v"))
            on = (out[entity] == F.col("_e")) & out[value].eqNullSafe(F.col("_v"))
        same = grouped.agg(F.count(F.lit(1)).alias("_same"))
        joined = out.join(F.broadcast(same), on, "left")
        share = F.coalesce(F.col("_same"), F.lit(0)) / F.when(F.col("_total") > 0, F.col("_total"))
        out = joined.select(*[F.col(c) for c in out.columns], share.alias(name))
    return out.drop("_total")


_INT_TYPES = ("tinyint", "smallint", "int")


def _pair_key(entity: Column, value: Column) -> Column:
    """One bigint per (entity, value) pair of int columns, distinct for distinct pairs, a null
    value included (``entity`` is a non-negative code): a single integral join key makes Spark
    build a long-keyed hash relation, whose lookups cost a fraction of a multi-column key's."""
    pair = entity.cast("long") * F.lit(1 << 32) + value.cast("long") + F.lit(1 << 31)
    return F.when(value.isNull(), -(entity.cast("long") + 1)).otherwise(pair)
