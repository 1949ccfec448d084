"""Row time (FEATURES.md step 5): the piecewise-linear map of ``idx`` to seconds, the per-user /
per-song mean and standard deviation of that time, and the member's time columns.

KKBOX has no timestamps; the row order is the clock. Train rows are spread evenly over
2016-08-15 .. 2017-01-13 and test rows over 2017-01-13 .. 2017-02-28 (00:00 UTC+8), the
constants of the thesis code, scaled to the actual number of train and test rows.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window, WindowSpec
from pyspark.sql import functions as F

from relisten_spark.errors import InputError
from relisten_spark.features.columns import ENTITIES, earlier, over, require_columns

TRAIN_START = 1_471_190_400  # 2016-08-15 00:00 UTC+8
TRAIN_END = 1_484_236_800  # 2017-01-13 00:00 UTC+8
TEST_END = 1_488_211_200  # 2017-02-28 00:00 UTC+8
# KKBOX's test / train row proportion: the serving clock scales the test segment with it, so that
# timestamps never depend on how many rows come later (on KKBOX it equals the full profile's).
KKBOX_TRAIN_ROWS, KKBOX_TEST_ROWS = 7_377_418, 2_556_790


def serving_clock(n_train: int) -> int:
    """The ``n_total`` of the row-time map in the serving profile (and in scoring)."""
    return n_train + round(n_train * KKBOX_TEST_ROWS / KKBOX_TRAIN_ROWS)


def timestamp_column(n_train: int, n_total: int, idx: Column | None = None) -> Column:
    """The row time of ``idx`` (default ``col('idx')``) as float seconds.

    Train rows ``0 .. n_train-1``: ``idx / (n_train-1) * (TRAIN_END - TRAIN_START) + TRAIN_START``.
    Later rows: ``(idx - (n_train-1)) / (n_total - n_train) * (TEST_END - TRAIN_END) + TRAIN_END``;
    rows beyond ``n_total - 1`` (appended scoring events) extrapolate on that line. Without test
    rows (``n_total == n_train``) later rows continue at the train rate.
    """
    if n_train < 2:
        raise InputError(f"add_timestamp: need at least 2 train rows, got n_train={n_train}")
    if n_total < n_train:
        raise InputError(f"add_timestamp: n_total={n_total} is smaller than n_train={n_train}")
    idx = F.col("idx") if idx is None else idx
    last_train = n_train - 1
    train_time = idx / F.lit(float(last_train)) * F.lit(float(TRAIN_END - TRAIN_START)) + F.lit(
        float(TRAIN_START)
    )
    if n_total > n_train:
        test_span, test_rows = TEST_END - TRAIN_END, n_total - n_train
    else:
        test_span, test_rows = TRAIN_END - TRAIN_START, last_train
    test_time = (idx - F.lit(last_train)) / F.lit(float(test_rows)) * F.lit(float(test_span)) + F.lit(
        float(TRAIN_END)
    )
    return F.when(idx <= F.lit(last_train), train_time).otherwise(test_time)


def add_timestamp(ev: DataFrame, n_train: int, n_total: int) -> DataFrame:
    """``ev`` + ``timestamp`` (double, seconds; horizon PAST: position only).

    ``ev``: ``[idx long, ...]`` with train rows at ``idx`` 0..n_train-1 and test rows after them.
    ``n_train`` / ``n_total`` are constants: in the serving profile pass values that do not
    depend on rows after the event (see :func:`timestamp_column`).
    """
    require_columns(ev, ["idx"], "add_timestamp")
    return ev.withColumn("timestamp", timestamp_column(n_train, n_total))


def time_stats(prefix: str, frame: WindowSpec | None = None) -> list[Column]:
    """``<prefix>_timestamp_mean`` and ``<prefix>_timestamp_std`` (sample std, ddof=1) of
    ``timestamp``: over ``frame`` (per event), or as aggregates of a ``groupBy`` of the entity
    (``frame=None``: the full profile's BATCH value, or the serving value "now" over the whole log).
    """
    return [
        over(F.avg("timestamp"), frame).alias(f"{prefix}_timestamp_mean"),
        over(F.stddev_samp("timestamp"), frame).alias(f"{prefix}_timestamp_std"),
    ]


def time_stat_columns(key: str, prefix: str, serving: bool) -> list[Column]:
    """The time statistics of one entity as window columns (one sort by ``key``): over all its
    rows (full) or over its rows with a strictly smaller ``idx`` (serving)."""
    return time_stats(prefix, earlier(key) if serving else Window.partitionBy(key))


def add_time_stats(ev: DataFrame, serving: bool) -> DataFrame:
    """``ev`` + ``msno_timestamp_mean``, ``msno_timestamp_std``, ``song_timestamp_mean``,
    ``song_timestamp_std`` (doubles, not logged).

    ``ev``: ``[idx long, msno int, song_id int, timestamp double, ...]``.

    * full (BATCH): mean and sample std (ddof=1) of ``timestamp`` over all rows of the user /
      song; the std is null for an entity with one row.
    * serving: the same over the entity's rows with a strictly smaller ``idx`` (cumulative);
      the mean is null without earlier rows, the std with fewer than two.
    """
    require_columns(ev, ["idx", "msno", "song_id", "timestamp"], "add_time_stats")
    for key, prefix in ENTITIES:
        ev = ev.select("*", *time_stat_columns(key, prefix, serving))
    return ev


def membership_time_columns() -> list[Column]:
    """``time_spent`` = timestamp - registration_init_time and ``time_left`` = expiration_date -
    timestamp, truncated to int32 like the thesis (null when an input is null or out of range)."""
    spent = (F.col("timestamp") - F.col("registration_init_time")).try_cast("int")
    left = (F.col("expiration_date") - F.col("timestamp")).try_cast("int")
    return [spent.alias("time_spent"), left.alias("time_left")]
