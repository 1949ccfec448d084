"""Broadcast lookups of per-entity tables, packed into typed arrays (feature assembly, scoring pairs)."""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def packed_lookup(
    rows: DataFrame, table: DataFrame, key: str, table_key: str, columns: Mapping[str, str], tag: str
) -> tuple[DataFrame, list[Column]]:
    """Left-join ``table`` (one row per ``table_key``, broadcast) onto ``rows`` by ``rows[key]``,
    its ``columns`` (output name -> column of ``table``) packed into one array column per data
    type (``<tag>_0``, ``<tag>_1``, ...); returns the joined frame and the columns that unpack them (null
    when no row matches).

    Select the unpacking columns once, after the last lookup. Why: an operator whose output has
    more than ``spark.sql.codegen.maxFields`` (100) fields, nested struct fields included, runs
    without whole-stage code generation, and a join that does copies every column of its row;
    four flat joins of ~100 columns onto a ~100-column frame copied ~1,200 values per row. An
    array is one field, so the packed joins stay generated and the final projection copies
    each value once.
    """
    types = dict(table.dtypes)
    groups: dict[str, list[str]] = {}
    for name, source in columns.items():
        groups.setdefault(types[source], []).append(name)
    arrays = {dtype: f"{tag}_{index}" for index, dtype in enumerate(groups)}
    packed = table.select(
        F.col(table_key).alias(f"{tag}_key"),
        *[
            F.array(*[F.col(columns[n]) for n in names]).alias(arrays[dtype])
            for dtype, names in groups.items()
        ],
    )
    joined = rows.join(F.broadcast(packed), rows[key] == F.col(f"{tag}_key"), "left").drop(f"{tag}_key")
    unpack = {
        name: F.col(arrays[dtype])[position].alias(name)
        for dtype, names in groups.items()
        for position, name in enumerate(names)
    }
    return joined, [unpack[name] for name in columns]
