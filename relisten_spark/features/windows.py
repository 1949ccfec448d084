"""Window counts (FEATURES.md step 5): how many rows of the same user / song lie in a window
of ``idx`` before or after the event, and how many came before it at all.

Range frames over ``idx`` (never Python loops): the thesis's ``i-w <= j <= i-1`` is the frame
``rangeBetween(-w, -1)`` and its ``i <= j <= i+w-1`` the frame ``rangeBetween(0, w-1)``, each
computed as a difference of two running counts. Every column of one key is
computed in one ``select`` so that Spark sorts the rows once per key. Rows tied at one ``idx``
(appended scoring events) never count each other in a before-window.

State now (scoring): per entity, how many of its rows the log holds
(:func:`~relisten_spark.features.columns.rows_state`) and how many lie in each before-window of
an event at ``idx = N`` (:func:`window_state`);
:func:`counts_from_state` turns them into the same columns with the same transform.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from relisten_spark.errors import InputError
from relisten_spark.features.columns import ENTITIES, count_where, log_count, require_columns, rows_before
from relisten_spark.features.neighbors import COPIED, check_fill, fill_gaps, neighbour_columns
from relisten_spark.features.timeline import time_stat_columns


def _running_count(key: str, offset: int) -> Column:
    """#rows of the same ``key`` with ``idx <= i + offset``: a frame from UNBOUNDED PRECEDING,
    which Spark evaluates incrementally."""
    frame = Window.partitionBy(key).orderBy("idx").rangeBetween(Window.unboundedPreceding, offset)
    return F.count(F.lit(1)).over(frame)


def before_name(prefix: str, window: int) -> str:
    return f"{prefix}_{window}_before_cnt"


def _check_windows(windows: Sequence[int]) -> None:
    bad = [w for w in windows if int(w) < 1]
    if bad:
        raise InputError(f"add_window_counts: windows must be positive, got {bad}")


def window_count_columns(key: str, prefix: str, windows: Sequence[int], include_after: bool) -> list[Column]:
    """The window-count columns of one entity (see :func:`add_window_counts`).

    Each count is a difference of two running counts, ``#(idx <= i+b) - #(idx <= i+a-1)`` for
    the frame ``[i+a, i+b]``: Spark evaluates a frame that starts at UNBOUNDED PRECEDING
    incrementally (:func:`_running_count`), but re-aggregates every row of a sliding frame
    ``rangeBetween(a, b)`` each time it moves (O(rows x frame size) per key).
    """
    _check_windows(windows)
    earlier = _running_count(key, -1)
    columns = [
        log_count(earlier - _running_count(key, -int(w) - 1)).alias(before_name(prefix, w)) for w in windows
    ]
    if include_after:
        columns += [
            log_count(_running_count(key, int(w) - 1) - earlier).alias(f"{prefix}_{w}_after_cnt")
            for w in windows
        ]
    return columns


def till_now_column(key: str, prefix: str) -> Column:
    """log1p(#earlier rows of the entity), see :func:`add_till_now`."""
    return log_count(_running_count(key, -1)).alias(f"{prefix}_till_now_cnt")


def window_state(prefix: str, windows: Sequence[int], now_idx: int) -> list[Column]:
    """Aggregates of a ``groupBy`` of the entity over the log: ``_<prefix>_w<w>``, its rows in the
    before-window ``[N - w, N - 1]`` of an event at ``idx = now_idx`` (= N)."""
    _check_windows(windows)
    return [count_where(F.col("idx") >= now_idx - int(w)).alias(f"_{prefix}_w{w}") for w in windows]


def counts_from_state(prefix: str, windows: Sequence[int]) -> dict[str, Column]:
    """``<prefix>_till_now_cnt`` and ``<prefix>_<w>_before_cnt`` of an event at N from the state
    columns of :func:`~relisten_spark.features.columns.rows_state` and :func:`window_state`
    (an entity without rows: 0)."""
    out = {f"{prefix}_till_now_cnt": log_count(rows_before(prefix))}
    for w in windows:
        out[before_name(prefix, w)] = log_count(F.coalesce(F.col(f"_{prefix}_w{w}"), F.lit(0)))
    return out


def add_window_counts(ev: DataFrame, windows: Sequence[int], include_after: bool) -> DataFrame:
    """``ev`` + ``msno_{w}_before_cnt``, ``song_{w}_before_cnt`` for every ``w`` in ``windows``
    and, when ``include_after``, ``msno_{w}_after_cnt``, ``song_{w}_after_cnt`` (doubles, log1p).

    ``ev``: ``[idx long, msno int, song_id int, ...]``.

    * ``{key}_{w}_before_cnt`` = log1p(#rows j of the key with ``i-w <= idx_j <= i-1``): the
      current row is excluded (minimum 0). PAST.
    * ``{key}_{w}_after_cnt`` = log1p(#rows j of the key with ``i <= idx_j <= i+w-1``): the current
      row is included (minimum log 2). FUTURE: leave it out of the serving profile.
    """
    require_columns(ev, ["idx", "msno", "song_id"], "add_window_counts")
    for key, prefix in ENTITIES:
        ev = ev.select("*", *window_count_columns(key, prefix, windows, include_after))
    return ev


def add_till_now(ev: DataFrame) -> DataFrame:
    """``ev`` + ``msno_till_now_cnt``, ``song_till_now_cnt`` (doubles): log1p of the number of
    earlier rows (``idx_j < i``) of the same user / song. PAST, identical in both profiles.

    ``ev``: ``[idx long, msno int, song_id int, ...]``.
    """
    require_columns(ev, ["idx", "msno", "song_id"], "add_till_now")
    for key, prefix in ENTITIES:
        ev = ev.select("*", till_now_column(key, prefix))
    return ev


def add_sequence_features(
    ev: DataFrame,
    windows: Sequence[int],
    include_after: bool,
    serving: bool,
    fill: Mapping[str, float] | None = None,
) -> DataFrame:
    """The same columns as :func:`~relisten_spark.features.neighbors.add_neighbors`,
    :func:`add_window_counts`, :func:`add_till_now` and
    :func:`~relisten_spark.features.timeline.add_time_stats` in one go, with the same arguments,
    but with ONE sort of the events per key: every user-keyed window column in one ``select``,
    then every song-keyed one (calling the four functions one after the other shuffles the
    events once per function and key). No joins: the plan stays linear.

    ``ev``: ``[idx long, msno int, song_id int, source_type int, source_screen_name int,
    split string, timestamp double, ...]``.
    """
    require_columns(ev, ["idx", "msno", "song_id", *COPIED, "split", "timestamp"], "add_sequence_features")
    check_fill(include_after, fill)
    for key, prefix in ENTITIES:
        ev = ev.select("*", *sequence_columns(key, prefix, windows, include_after, serving))
    return fill_gaps(ev, include_after, fill)


def sequence_columns(
    key: str, prefix: str, windows: Sequence[int], include_after: bool, serving: bool
) -> list[Column]:
    """The sequence columns of one entity (see :func:`add_sequence_features`), all over windows
    partitioned by ``key`` and ordered by ``idx`` (one sort): the neighbour columns (user only,
    time deltas un-filled), window and till-now counts, time statistics."""
    columns = neighbour_columns(include_after) if key == "msno" else []
    columns += window_count_columns(key, prefix, windows, include_after)
    columns.append(till_now_column(key, prefix))
    return columns + time_stat_columns(key, prefix, serving)
