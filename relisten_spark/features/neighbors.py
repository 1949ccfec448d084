"""Previous / next event of the same user (FEATURES.md step 6).

The previous event is taken with ``last`` over ``rangeBetween(unboundedPreceding, -1)`` rather
than ``lag``: it is the same row when ``idx`` is unique, and rows tied at one ``idx`` (scoring
events appended at one time) never see each other. The next event (``after_*``, FUTURE, full
profile only) is ``lead(1)``, which assumes unique ``idx`` as the full profile has.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from relisten_spark.errors import InputError
from relisten_spark.features.timeline import require_columns

# Columns copied from the neighbouring event into before_<column> / after_<column>.
COPIED = ("song_id", "source_type", "source_screen_name")
_NEEDED = ["idx", "msno", "split", "timestamp", *COPIED]


def _previous(column: str) -> Column:
    earlier = Window.partitionBy("msno").orderBy("idx").rangeBetween(Window.unboundedPreceding, -1)
    return F.last(column).over(earlier)


def _next(column: str) -> Column:
    return F.lead(column).over(Window.partitionBy("msno").orderBy("idx"))


def _delta_columns(include_after: bool) -> list[tuple[Column, str]]:
    """(un-filled time delta, its name): log1p of the gap to the previous / next event."""
    columns = [(F.log1p(F.col("timestamp") - _previous("timestamp")), "before_timestamp")]
    if include_after:
        columns.append((F.log1p(_next("timestamp") - F.col("timestamp")), "after_timestamp"))
    return columns


def neighbour_columns(include_after: bool) -> list[Column]:
    """Un-filled neighbour columns: copies fall back to the row's own values, deltas stay null."""
    sides = [("before", _previous)] + ([("after", _next)] if include_after else [])
    deltas = {name: column for column, name in _delta_columns(include_after)}
    columns: list[Column] = []
    for side, pick in sides:
        exists = pick("idx").isNotNull()
        columns += [F.when(exists, pick(col)).otherwise(F.col(col)).alias(f"{side}_{col}") for col in COPIED]
        columns.append(deltas[f"{side}_timestamp"].alias(f"{side}_timestamp"))
    return columns


def add_neighbors(ev: DataFrame, include_after: bool, fill: Mapping[str, float] | None = None) -> DataFrame:
    """``ev`` + ``before_song_id``, ``before_source_type``, ``before_source_screen_name`` (codes,
    PAST), ``before_timestamp`` (double, PAST) and, when ``include_after``, the same four
    ``after_*`` columns (FUTURE).

    ``ev``: ``[idx long, msno int, song_id int, source_type int, source_screen_name int,
    split string, timestamp double, ...]``.

    * ``before_*`` copies the user's previous event (largest ``idx`` below ``i``); a user's first
      event copies its own values. ``after_*`` copies the next event; the last copies its own.
    * ``before_timestamp`` = log1p(t_i - t_prev), ``after_timestamp`` = log1p(t_next - t_i); where
      there is no neighbour the value is filled: with ``fill=None`` by the mean of the column
      over the row's own ``split`` (the thesis; computed after log1p), otherwise with the
      constant ``fill[column]`` (serving: from :func:`fit_timestamp_fill` on the fit rows).
    """
    require_columns(ev, _NEEDED, "add_neighbors")
    check_fill(include_after, fill)
    return fill_gaps(ev.select("*", *neighbour_columns(include_after)), include_after, fill)


def check_fill(include_after: bool, fill: Mapping[str, float] | None) -> None:
    """Raise :class:`InputError` when ``fill`` lacks a value for one of the time deltas."""
    if fill is None:
        return
    deltas = ["before_timestamp"] + (["after_timestamp"] if include_after else [])
    missing = [d for d in deltas if d not in fill]
    if missing:
        raise InputError(f"add_neighbors: fill has no value for {missing[0]!r}")


def fill_gaps(out: DataFrame, include_after: bool, fill: Mapping[str, float] | None) -> DataFrame:
    """Fill the null time deltas of a frame that has :func:`neighbour_columns` (see
    :func:`add_neighbors`). With ``fill=None`` the per-split means are computed eagerly (one
    small job on a pruned plan: only ``msno``, ``idx``, ``timestamp``, ``split`` are read) and
    applied as literals, so the plan of ``out`` is not embedded twice."""
    deltas = ["before_timestamp"] + (["after_timestamp"] if include_after else [])
    if fill is None:
        rows = out.groupBy("split").agg(*[F.avg(d).alias(d) for d in deltas]).collect()
        by_split = {d: {r["split"]: r[d] for r in rows if r[d] is not None} for d in deltas}
        values = {d: _per_split(by_split[d]) for d in deltas}
    else:
        values = {d: F.lit(float(fill[d])) for d in deltas}
    return out.select(
        *[F.coalesce(F.col(c), values[c]).alias(c) if c in values else F.col(c) for c in out.columns]
    )


def _per_split(means: Mapping[str, float]) -> Column:
    """``means[split]`` of the row's split (null for a split without a mean)."""
    value = F.lit(None).cast("double")
    for split, mean in sorted(means.items()):
        value = F.when(F.col("split") == F.lit(split), F.lit(float(mean))).otherwise(value)
    return value


def fit_timestamp_fill(ev: DataFrame, fit_mask: Column) -> dict[str, float]:
    """The serving fill of :func:`add_neighbors`: ``{"before_timestamp": mean}``, the mean of
    log1p(t_i - t_prev) over the fit rows (``fit_mask`` true) that have a previous event.

    ``ev`` as for :func:`add_neighbors`. Runs one small aggregation job.
    """
    require_columns(ev, ["idx", "msno", "timestamp"], "fit_timestamp_fill")
    (delta, name), *_ = _delta_columns(include_after=False)
    narrow = ev.select("msno", "idx", "timestamp", fit_mask.alias("_fit"))
    deltas = narrow.select(F.col("_fit"), delta.alias(name)).where(F.col("_fit"))
    row = deltas.agg(F.avg(name).alias(name)).first()
    if row is None or row[name] is None:
        raise InputError("fit_timestamp_fill: no fit row has an earlier event of its user")
    return {name: float(row[name])}
