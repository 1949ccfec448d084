"""The user's source profile (FEATURES.md step 2): the share of the user's rows per source code,
and P(source | user) for the row's own source value."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from relisten_spark.features.probability import add_batch_shares, add_conditional_share
from relisten_spark.features.timeline import require_columns

SOURCE_COLUMNS = ("source_system_tab", "source_screen_name", "source_type")


def share_name(column: str, code: int) -> str:
    """The share column of ``code`` (the thesis's ``msno_source_{system_tab,screen_name,type}_{c}``).

    >>> share_name("source_screen_name", 12)
    'msno_source_screen_name_12'
    """
    return f"msno_{column}_{code}"


def prob_name(column: str) -> str:
    """The P(x | user) column of ``column``.

    >>> prob_name("source_system_tab")
    'msno_source_system_tab_prob'
    """
    return f"msno_{column}_prob"


def _flags(codes: Mapping[str, Sequence[int]]) -> list[tuple[Column, str]]:
    """(1 when the row's column has the code else 0, share column name) per listed code."""
    return [
        (F.when(F.col(column) == F.lit(int(code)), F.lit(1)).otherwise(F.lit(0)), share_name(column, code))
        for column, listed in codes.items()
        for code in listed
    ]


def _share(count: Column, total: Column) -> Column:
    return count.cast("double") / F.when(total > 0, total)


def user_source_shares(ev: DataFrame, codes: Mapping[str, Sequence[int]]) -> DataFrame:
    """The full-profile (BATCH) shares, one row per user: ``[msno, msno_{column}_{c} double ...]``
    = the fraction of all the user's rows whose ``column`` is ``c`` (0.0 when none).

    ``ev``: ``[msno int, <each column of codes> int, ...]``.
    """
    require_columns(ev, ["msno", *codes], "user_source_shares")
    flags = _flags(codes)
    sums = ev.groupBy("msno").agg(F.count(F.lit(1)).alias("_n"), *[F.sum(f).alias(name) for f, name in flags])
    return sums.select("msno", *[_share(F.col(name), F.col("_n")).alias(name) for _, name in flags])


def add_source_probs(
    ev: DataFrame,
    serving: bool,
    columns: Sequence[str] = SOURCE_COLUMNS,
    counted: DataFrame | None = None,
) -> DataFrame:
    """``ev`` + ``msno_{column}_prob`` (double) per column: P(the row's value | user), the share
    of the user's rows with the row's own value (the row itself counted; any value, listed or
    not). Serving: over the user's rows with a strictly smaller ``idx`` (null for the first).

    ``ev``: ``[idx long, msno int, <columns> int, ...]``; ``counted``: see
    :func:`~relisten_spark.features.probability.add_batch_shares` (full profile only).
    """
    if not serving:
        return add_batch_shares(ev, "msno", {prob_name(c): c for c in columns}, counted=counted)
    for column in columns:
        ev = add_conditional_share(ev, "msno", column, prob_name(column), serving)
    return ev


def add_source_profile(ev: DataFrame, serving: bool, codes: Mapping[str, Sequence[int]]) -> DataFrame:
    """``ev`` + :func:`add_source_shares` + one P(x | user) per column of ``codes``
    (:func:`add_source_probs`, ``msno_{column}_prob`` double).

    ``ev``: ``[idx long, msno int, <each column of codes> int, ...]``.
    """
    return add_source_probs(add_source_shares(ev, serving, codes), serving, list(codes))


def add_source_shares(ev: DataFrame, serving: bool, codes: Mapping[str, Sequence[int]]) -> DataFrame:
    """``ev`` + one share column per (column, code) of ``codes``, over user-keyed windows only.

    ``ev``: ``[idx long, msno int, <each column of codes> int, ...]``; ``codes`` maps a source
    column (``source_system_tab``, ``source_screen_name``, ``source_type``) to the codes that get
    a column (0.0 when the user never has the code, even if no row has it).

    * ``msno_{column}_{c}`` (double): the fraction of the user's rows whose ``column`` is ``c``.
    * full: over all rows of the user (BATCH; the same values as :func:`user_source_shares`).
      serving: over the user's rows with a strictly smaller ``idx``; a user's first event gets
      null everywhere.
    """
    require_columns(ev, ["idx", "msno", *codes], "add_source_shares")
    flags = _flags(codes)
    if serving:
        frame = Window.partitionBy("msno").orderBy("idx").rangeBetween(Window.unboundedPreceding, -1)
    else:
        frame = Window.partitionBy("msno")
    total = F.count(F.lit(1)).over(frame)
    return ev.select("*", *[_share(F.sum(flag).over(frame), total).alias(name) for flag, name in flags])
