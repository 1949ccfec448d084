"""Previous / next event of the same user (FEATURES.md steps 6 and 9): its codes, the time gap
to it, its song's columns (``before_X``, ``after_X``) and the same-type / same-artist flags.

The previous event is taken with ``last`` over ``rangeBetween(unboundedPreceding, -1)`` rather
than ``lag``: it is the same row when ``idx`` is unique, and rows tied at one ``idx`` (scoring
events appended at one time) never see each other. The next event (``after_*``, FUTURE, full
profile only) is ``lead(1)``, which assumes unique ``idx`` as the full profile has.

State now (scoring): the previous event of an event appended after the log is the user's last
event of the log (:func:`last_event_state`); :func:`previous_from_state` applies the same
:func:`time_gap` and :func:`previous_or_own` to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from relisten_spark.errors import InputError
from relisten_spark.features.catalogue import neighbour_stems
from relisten_spark.features.columns import earlier, require_columns, rows_before
from relisten_spark.features.spec import Shape

# Columns copied from the neighbouring event into before_<column> / after_<column>.
COPIED = ("song_id", "source_type", "source_screen_name")
_NEEDED = ["idx", "msno", "split", "timestamp", *COPIED]
LAST = "_last_"  # prefix of the last-event state columns


def neighbour_song_columns(side: str, shape: Shape) -> list[str]:
    """The song columns of the previous / next song: the catalogue's ``<side>_<stem>`` stems, and
    ``artist_name`` and ``song_code`` (the flags and the nets need them)."""
    return [*neighbour_stems(side, shape), "artist_name", "song_code"]


def time_gap(later: Column, sooner: Column) -> Column:
    """The time-delta features' value: log1p of the gap in seconds (null without a neighbour)."""
    return F.log1p(later - sooner)


def previous_or_own(has_previous: Column, previous: Column, own: Column) -> Column:
    """A neighbour copy: the neighbour's value, or the row's own without a neighbour."""
    return F.when(has_previous, previous).otherwise(own)


def _previous(column: str) -> Column:
    return F.last(column).over(earlier("msno"))


def _next(column: str) -> Column:
    return F.lead(column).over(Window.partitionBy("msno").orderBy("idx"))


def _delta_columns(include_after: bool) -> list[tuple[Column, str]]:
    """(un-filled time delta, its name): log1p of the gap to the previous / next event."""
    columns = [(time_gap(F.col("timestamp"), _previous("timestamp")), "before_timestamp")]
    if include_after:
        columns.append((time_gap(_next("timestamp"), F.col("timestamp")), "after_timestamp"))
    return columns


def neighbour_columns(include_after: bool) -> list[Column]:
    """Un-filled neighbour columns: copies fall back to the row's own values, deltas stay null."""
    sides = [("before", _previous)] + ([("after", _next)] if include_after else [])
    deltas = {name: column for column, name in _delta_columns(include_after)}
    columns: list[Column] = []
    for side, pick in sides:
        exists = pick("idx").isNotNull()
        columns += [previous_or_own(exists, pick(col), F.col(col)).alias(f"{side}_{col}") for col in COPIED]
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
    return _mean_gap(narrow.select(F.col("_fit"), delta.alias(name)).where(F.col("_fit")))


def stored_timestamp_fill(features: DataFrame, fit_mask: Column) -> dict[str, float]:
    """The fill of :func:`fit_timestamp_fill` read back from the serving feature rows: the mean of
    their ``before_timestamp`` over the fit rows with an earlier event (``msno_till_now_cnt > 0``),
    where it is the un-filled gap."""
    with_previous = features.where(fit_mask & (F.col("msno_till_now_cnt") > 0))
    return _mean_gap(with_previous.select("before_timestamp"))


def _mean_gap(gaps: DataFrame) -> dict[str, float]:
    """``{"before_timestamp": mean}`` of ``gaps`` ``[before_timestamp]`` (nulls ignored)."""
    row = gaps.agg(F.avg("before_timestamp").alias("before_timestamp")).first()
    if row is None or row["before_timestamp"] is None:
        raise InputError("the timestamp fill: no fit row has an earlier event of its user")
    return {"before_timestamp": float(row["before_timestamp"])}


def add_neighbor_values(rows: DataFrame, columns: Sequence[str], include_after: bool) -> DataFrame:
    """``rows`` + ``before_<c>`` (and ``after_<c>``) for each per-row column ``c``: its value on
    the user's previous (next) event; the first (last) event takes its own value.

    ``rows``: ``[idx, msno, <columns> ...]``. The previous event is read with ``last`` over a range
    frame ending at ``idx - 1`` (rows tied at one idx never see each other); the next with ``first``
    over a frame starting at ``idx + 1`` (full profile only). Song columns that are one value per
    song are joined on the neighbour's song key instead (the feature job's assembly).
    """
    before = earlier("msno")
    later = Window.partitionBy("msno").orderBy("idx").rangeBetween(1, Window.unboundedFollowing)
    has_prev = F.count(F.lit(1)).over(before) > 0
    has_next = F.count(F.lit(1)).over(later) > 0
    out = [previous_or_own(has_prev, F.last(c).over(before), F.col(c)).alias(f"before_{c}") for c in columns]
    if include_after:
        out += [
            previous_or_own(has_next, F.first(c).over(later), F.col(c)).alias(f"after_{c}") for c in columns
        ]
    return rows.select("*", *out)


def same_flag(left: Column, right: Column) -> Column:
    """1.0 when the two codes are equal, else 0.0 (null codes compare unequal, never null)."""
    return F.when(left == right, F.lit(1.0)).otherwise(F.lit(0.0))


def flag_columns(include_after: bool) -> list[Column]:
    """``before/after_type_same`` and ``before/after_artist_same`` over ``[source_type,
    before_source_type, after_source_type, artist_name, before_artist_name, after_artist_name]``.

    Unknown artists share code 0 and therefore compare equal, like the thesis's max+1 code.
    """
    sides = ["before", "after"] if include_after else ["before"]
    out = [same_flag(F.col(f"{s}_source_type"), F.col("source_type")).alias(f"{s}_type_same") for s in sides]
    out += [
        same_flag(F.col(f"{s}_artist_name"), F.col("artist_name")).alias(f"{s}_artist_same") for s in sides
    ]
    return out


def last_idx_state() -> Column:
    """Aggregate of a ``groupBy`` of the user over the log: the idx of the user's last event."""
    return F.max("idx").alias(f"{LAST}idx")


def last_event_state(rows: DataFrame, per_user: DataFrame, columns: Sequence[str]) -> DataFrame:
    """``[msno, _last_<c> ...]``: the ``columns`` of each user's last event in the log ``rows``,
    found by its idx (``per_user``: ``[msno, _last_idx]``, :func:`last_idx_state`)."""
    ends = per_user.select(F.col("msno").alias("_m"), F.col(f"{LAST}idx").alias("_i"))
    is_last = (F.col("msno") == F.col("_m")) & (F.col("idx") == F.col("_i"))
    last_rows = rows.join(F.broadcast(ends), is_last)
    return last_rows.select("msno", *[F.col(c).alias(f"{LAST}{c}") for c in columns])


def previous_from_state(now: Column, columns: Sequence[str], fill: Mapping[str, float]) -> dict[str, Column]:
    """The previous-event columns of an event at time ``now`` appended after the log:
    ``before_timestamp`` (filled with ``fill`` as the per-event form fills it) and ``before_<c>``
    for each of ``columns``, from the user's :func:`last_event_state` (``_last_timestamp``,
    ``_last_<c>``) and the row's own values."""
    seen = rows_before("msno") > 0
    gap = time_gap(now, F.col(f"{LAST}timestamp"))
    out = {"before_timestamp": F.coalesce(gap, F.lit(float(fill["before_timestamp"])))}
    for column in columns:
        out[f"before_{column}"] = previous_or_own(seen, F.col(f"{LAST}{column}"), F.col(column))
    return out
