"""Packed broadcast lookups of the assembly: the same values as a flat left join, and generated
code for joins whose unpacked output would exceed Spark's whole-stage codegen field limit."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from relisten_spark.features.lookup import packed_lookup

pytestmark = pytest.mark.spark


def _table(spark, n_columns: int):
    """``[_song int, name string, c0 int, c1 float, c2 double, ...]``: songs 1..3."""
    kinds = ["int", "float", "double"]
    columns = [F.col("_song"), F.concat(F.lit("s"), F.col("_song").cast("string")).alias("name")]
    columns += [
        F.when(F.col("_song") != 2, F.col("_song") * 10 + i).cast(kinds[i % 3]).alias(f"c{i}")
        for i in range(n_columns)
    ]
    return spark.range(1, 4).select(F.col("id").cast("int").alias("_song")).select(*columns)


def test_packed_lookup_equals_a_flat_left_join(spark) -> None:
    table = _table(spark, 6)
    rows = spark.createDataFrame([(0, 1), (1, 2), (2, 9), (3, None), (4, 3)], "idx long, song int")
    wanted = {f"x_{c}": c for c in ["name", "c0", "c1", "c2", "c3", "c4", "c5"]}
    joined, unpack = packed_lookup(rows, table, "song", "_song", wanted, "_t")
    got = joined.select(*rows.columns, *unpack).orderBy("idx")
    flat = table.select(F.col("_song").alias("_k"), *[F.col(c).alias(n) for n, c in wanted.items()])
    want = rows.join(flat, rows["song"] == flat["_k"], "left").drop("_k").orderBy("idx")
    assert got.schema == want.schema  # names, order and types (int, float, double, string) kept
    assert got.collect() == want.collect()
    by_idx = {r.idx: r for r in got.collect()}
    assert by_idx[2].x_name is None  # a key not in the table
    assert by_idx[3].x_c0 is None  # a null key
    assert by_idx[1].x_name == "s2"
    assert by_idx[1].x_c0 is None  # a null inside the table


def test_wide_packed_lookups_run_in_generated_code(spark) -> None:
    table = _table(spark, 150)
    rows = spark.range(100).select(F.col("id").alias("idx"), (F.col("id") % 4).cast("int").alias("song"))
    wanted = {f"x_{i}": f"c{i}" for i in range(150)}
    joined, unpack = packed_lookup(rows, table, "song", "_song", wanted, "_t")
    previous = spark.conf.get("spark.sql.adaptive.enabled")
    spark.conf.set("spark.sql.adaptive.enabled", "false")  # the final plan, not the adaptive wrapper
    try:
        plan = joined._jdf.queryExecution().executedPlan().toString()
        flat = rows.join(F.broadcast(table), rows["song"] == table["_song"], "left")
        flat_plan = flat._jdf.queryExecution().executedPlan().toString()
    finally:
        spark.conf.set("spark.sql.adaptive.enabled", previous)
    join_lines = [line for line in plan.splitlines() if "BroadcastHashJoin" in line]
    assert join_lines, plan
    assert all("*(" in line for line in join_lines), plan
    # the reason: the same join with 152 flat columns falls out of generated code
    assert not any("*(" in line for line in flat_plan.splitlines() if "BroadcastHashJoin" in line)
    # ids 0..99 cycle songs 0..3: song 0 is not in the table, song 2 has nulls in it
    assert joined.select(*unpack).where(F.col("x_0").isNotNull()).count() == 50
