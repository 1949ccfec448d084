"""Column helpers every feature family shares, and the pattern that gives each family one
definition in both of its forms.

A PAST feature of the serving profile is an aggregate over the entity's rows with a smaller
``idx``. It has two forms, built from the same expression:

* **per event** (the feature job): the aggregate over the window :func:`earlier` of each row;
* **state now** (scoring): the same aggregate in a ``groupBy(entity)`` over the whole log, which
  is its value for a hypothetical event appended after the log (``idx = N``).

:func:`over` applies an aggregate in either form (``frame=None``: plain aggregate). Transforms
of a count (:func:`log_count`, :func:`share`) are written once here and used by both forms.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pyspark.sql import Column, DataFrame, Window, WindowSpec
from pyspark.sql import functions as F

from relisten_spark.errors import InputError

# (key column, name prefix) of the two entities every sequence family is computed for.
ENTITIES = (("msno", "msno"), ("song_id", "song"))


def require_columns(df: DataFrame, columns: Iterable[str], what: str) -> None:
    """Raise :class:`InputError` naming the first column of ``columns`` missing from ``df``."""
    present = set(df.columns)
    for name in columns:
        if name not in present:
            raise InputError(f"{what}: input frame has no column {name!r}")


def earlier(*keys: str | Column) -> WindowSpec:
    """The rows of the same ``keys`` with a strictly smaller ``idx`` (rows tied at one idx never
    see each other)."""
    return Window.partitionBy(*keys).orderBy("idx").rangeBetween(Window.unboundedPreceding, -1)


def over(aggregate: Column, frame: WindowSpec | None) -> Column:
    """``aggregate`` over ``frame`` (per event), or as a plain aggregate (``frame=None``)."""
    return aggregate if frame is None else aggregate.over(frame)


def count_where(condition: Column) -> Column:
    """Aggregate: how many rows satisfy ``condition`` (0, never null)."""
    return F.sum(F.when(condition, F.lit(1)).otherwise(F.lit(0)))


def log_count(count: Column) -> Column:
    """The count features' transform: log1p(count) as a double."""
    return F.log1p(count.cast("double"))


def share(count: Column, total: Column) -> Column:
    """``count / total`` as a double; null when ``total`` is 0 (no rows to share)."""
    return count.cast("double") / F.when(total > 0, total)


def rows_state(prefix: str) -> Column:
    """Aggregate of a ``groupBy`` of the entity over the log: its number of rows ``_<prefix>_rows``,
    the earlier rows of an event appended after the log (the state of every count feature)."""
    return F.count(F.lit(1)).alias(f"_{prefix}_rows")


def rows_before(prefix: str) -> Column:
    """The state :func:`rows_state` of the row's entity; 0 for an entity without rows."""
    return F.coalesce(F.col(f"_{prefix}_rows"), F.lit(0))


def column_means(df: DataFrame, columns: Sequence[str]) -> dict[str, float | None]:
    """Mean of each column over ``df`` (nulls ignored); one small aggregation job."""
    row = df.agg(*[F.avg(c).alias(c) for c in columns]).first()
    return {c: (None if row is None or row[c] is None else float(row[c])) for c in columns}
