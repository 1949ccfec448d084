"""Conditional shares P(value | entity): the share of an entity's rows that carry this row's value.

FEATURES.md uses them in step 2 (``msno_source_{col}_prob``) and step 8 (``msno_{f}_prob``,
``song_{c}_prob``). A null value is a group of its own (rows with a null value share among
themselves).

State now (scoring, an event appended after the log): the share is
:func:`~relisten_spark.features.columns.share` of the entity's rows with the event's value
(:func:`value_count_state` for values known up front, :func:`add_value_counts` for values that
come with the event) over the entity's rows.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from relisten_spark.features.columns import count_where, earlier, require_columns, share


def tp_basis(ev: DataFrame) -> Column:
    """The TP+T basis of the thesis as a column over ``ev`` ``[msno, song_id, split, ...]``: test
    rows, and train rows whose (msno, song_id) pair has no test row. 'score' rows are not counted.
    """
    pair = Window.partitionBy("msno", "song_id")
    in_test = F.max((F.col("split") == "test").cast("int")).over(pair) == 1
    return (F.col("split") == "test") | ((F.col("split") == "train") & ~in_test)


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
    if serving:
        same_frame, entity_frame = earlier(entity, value), earlier(entity)
    else:
        same_frame, entity_frame = Window.partitionBy(entity, value), Window.partitionBy(entity)
    total = F.count(counted).over(entity_frame)
    same = F.count(counted).over(same_frame)
    return ev.select("*", share(same, total).alias(out))


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
        value_share = share(F.coalesce(F.col("_same"), F.lit(0)), F.col("_total"))
        out = joined.select(*[F.col(c) for c in out.columns], value_share.alias(name))
    return out.drop("_total")


_INT_TYPES = ("tinyint", "smallint", "int")


def _pair_key(entity: Column, value: Column) -> Column:
    """One bigint per (entity, value) pair of int columns, distinct for distinct pairs, a null
    value included (``entity`` is a non-negative code): a single integral join key makes Spark
    build a long-keyed hash relation, whose lookups cost a fraction of a multi-column key's."""
    pair = entity.cast("long") * F.lit(1 << 32) + value.cast("long") + F.lit(1 << 31)
    return F.when(value.isNull(), -(entity.cast("long") + 1)).otherwise(pair)


def value_count_state(prefix: str, column: str, values: Mapping[str, object]) -> list[Column]:
    """Aggregates of a ``groupBy`` of the entity over the log, for values known up front: per
    ``tag -> value`` of ``values``, ``_<prefix>_<column>_<tag>`` = how many of its rows have
    ``column == value``; divided by the entity's rows they are P(value | entity) "now"."""
    return [
        count_where(F.col(column) == F.lit(value)).alias(f"_{prefix}_{column}_{tag}")
        for tag, value in values.items()
    ]


def add_value_counts(pairs: DataFrame, rows: DataFrame, entity: str, values: Mapping[str, str]) -> DataFrame:
    """``pairs`` + ``_c_<name>`` per ``name -> value column`` of ``values``: how many of the
    entity's rows in the log (``rows``) carry the pair's value (null values match null values), the
    counts of P(value | entity) "now" for values that come with the pair.

    ``pairs`` and ``rows``: ``[<entity>, <value columns> ...]``. One join by the entity: each
    entity's counts per value as one map per value column (and its count of null values), so
    ``pairs`` is shuffled at most once, by the entity, and not at all when it is hash-partitioned
    by it already (one join per value column shuffled the whole frame once per column)."""
    state = None
    for i, value in enumerate(values.values()):
        counts = rows.groupBy(F.col(entity).alias("_e"), F.col(value).alias("_v")).agg(
            F.count(F.lit(1)).alias("_c")
        )
        known = F.when(F.col("_v").isNotNull(), F.struct("_v", "_c"))  # collect_list skips nulls
        one = counts.groupBy("_e").agg(
            F.map_from_entries(F.collect_list(known)).alias(f"_m{i}"),
            F.sum(F.when(F.col("_v").isNull(), F.col("_c"))).alias(f"_n{i}"),
        )
        state = one if state is None else state.join(one, "_e", "full")
    if state is None:
        return pairs
    joined = pairs.join(state, pairs[entity] == state["_e"], "left")
    counted = [
        F.coalesce(
            F.when(pairs[value].isNull(), F.col(f"_n{i}")).otherwise(F.col(f"_m{i}")[pairs[value]]), F.lit(0)
        ).alias(f"_c_{name}")
        for i, (name, value) in enumerate(values.items())
    ]
    return joined.select(*[pairs[c] for c in pairs.columns], *counted)
