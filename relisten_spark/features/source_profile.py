"""The source profile (FEATURES.md step 2): the share of the user's rows per source code, and
P(source value | user) and P(source value | song) for the row's own source values.

Both forms from one definition (:mod:`~relisten_spark.features.columns`): the shares are the same
aggregates over the user's earlier rows (per event) or over all the user's rows of the log (a
``groupBy``: the full profile's BATCH table, and the serving state now).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame, Window, WindowSpec
from pyspark.sql import functions as F

from relisten_spark.features.columns import count_where, earlier, over, require_columns, share
from relisten_spark.features.probability import add_batch_shares, add_conditional_share

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


def song_prob_name(column: str) -> str:
    """The P(x | song) column of ``column``.

    >>> song_prob_name("source_type")
    'song_source_type_prob'
    """
    return f"song_{column}_prob"


def source_share_columns(codes: Mapping[str, Sequence[int]], frame: WindowSpec | None = None) -> list[Column]:
    """``msno_{column}_{c}`` per listed code: the fraction of the user's rows (over ``frame``, or
    in a ``groupBy`` of the user with ``frame=None``) whose ``column`` is ``c``."""
    total = over(F.count(F.lit(1)), frame)
    return [
        share(over(count_where(F.col(column) == F.lit(int(code))), frame), total).alias(
            share_name(column, code)
        )
        for column, listed in codes.items()
        for code in listed
    ]


def user_source_shares(ev: DataFrame, codes: Mapping[str, Sequence[int]]) -> DataFrame:
    """The full-profile (BATCH) shares, one row per user: ``[msno, msno_{column}_{c} double ...]``
    = the fraction of all the user's rows whose ``column`` is ``c`` (0.0 when none).

    ``ev``: ``[msno int, <each column of codes> int, ...]``.
    """
    require_columns(ev, ["msno", *codes], "user_source_shares")
    return ev.groupBy("msno").agg(*source_share_columns(codes))


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


def add_song_source_probs(
    rows: DataFrame, serving: bool, basis: Column | None, counted: DataFrame | None = None
) -> DataFrame:
    """``rows`` + ``song_{column}_prob`` (double) per source column: P(the row's value | song) over
    the song's ``basis`` rows (full: BATCH, from aggregate tables of ``counted``; serving: the
    song's earlier rows).

    ``rows``: ``[idx long, song_id int, <source columns> int, ...]``.
    """
    probs = {song_prob_name(c): c for c in SOURCE_COLUMNS}
    if not serving:
        return add_batch_shares(rows, "song_id", probs, basis, rows if counted is None else counted)
    for out, value in probs.items():
        rows = add_conditional_share(rows, "song_id", value, out, serving, basis)
    return rows


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
    frame = earlier("msno") if serving else Window.partitionBy("msno")
    return ev.select("*", *source_share_columns(codes, frame))
