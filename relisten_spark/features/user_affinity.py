"""The user's affinity to song attributes: P(song attribute | user), P(source | user) (the
``msno_{f}_prob`` shares) and the thesis's member_add statistics (the means / stds of the user's
songs' attributes, the shares of their languages, the number of distinct artists).

Basis: the thesis counts over TP+T (:func:`~relisten_spark.features.probability.tp_basis`) and
reads song attributes from the NN song table (:func:`add_nn_values`: mean-imputed song_length,
artist counts and yy; unknown artists share one code). Every row gets an output, rows outside
the basis included (their shares are looked up with the basis counts).

Serving: every aggregate is over the user's rows with a strictly smaller ``idx``; the TP filter
needs test rows (the future), so every earlier row counts. State now (scoring): the same
aggregates in a ``groupBy`` of the user over the log (:func:`member_add_state`,
:func:`artist_count_state`, and the (user, value) counts of
:func:`~relisten_spark.features.probability.add_value_counts` for the shares).
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame, WindowSpec
from pyspark.sql import functions as F

from relisten_spark.features.catalogue import LANGUAGE_SHARE_CODES, MEMBER_ADD_STEMS
from relisten_spark.features.columns import column_means, earlier, log_count, over
from relisten_spark.features.probability import add_batch_shares, add_conditional_share

# P(song attribute | user): output name -> value column of the rows frame
USER_ATTRIBUTE_SHARES = {
    "msno_artist_name_prob": "artist_name",
    "msno_first_genre_id_prob": "first_genre_id",
    "msno_xxx_prob": "xxx",
    "msno_language_prob": "language",
    "msno_yy_prob": "_nn_yy",
}
# ... and P(source | user), last: the order of the window columns of the serving profile
USER_SHARES = {**USER_ATTRIBUTE_SHARES, "msno_source_prob": "source"}
# member_add statistics: name stem -> NN (mean-imputed) value column of the rows frame
MEMBER_ADD_VALUES = {stem: f"_nn_{stem}" for stem in MEMBER_ADD_STEMS}
# the member_add inputs that are one value per song, and those that are per-row counts (serving)
NN_STATIC = ("song_length", "yy")
NN_COUNTS = tuple(stem for stem in MEMBER_ADD_STEMS if stem not in NN_STATIC)
ARTISTS_STATE = "_msno_artists"


def add_user_shares(
    rows: DataFrame, serving: bool, basis: Column | None, counted: DataFrame | None = None
) -> DataFrame:
    """``rows`` + the 6 ``msno_{f}_prob`` of :data:`USER_SHARES` (doubles).

    ``rows``: ``[idx, msno, artist_name, first_genre_id, xxx, language, _nn_yy, source, ...]``.
    Missing values (code 0, the imputed year) form a group of their own. Full (BATCH) shares come
    from aggregate tables of ``counted`` (default ``rows``, see
    :func:`~relisten_spark.features.probability.add_batch_shares`), serving ones from cumulative
    windows.
    """
    if not serving:
        return add_batch_shares(rows, "msno", USER_SHARES, basis, rows if counted is None else counted)
    for out, value in USER_SHARES.items():
        rows = add_conditional_share(rows, "msno", value, out, serving, basis)
    return rows


def nn_value(stem: str, fill: Mapping[str, float | None]) -> Column:
    """The NN song-table value of the member_add input ``stem``: the column, nulls replaced by
    ``fill[stem]`` (the song-table mean, FEATURES.md step 7), as ``_nn_<stem>``."""
    return F.coalesce(F.col(stem), F.lit(fill.get(stem))).cast("double").alias(MEMBER_ADD_VALUES[stem])


def add_nn_values(rows: DataFrame, fill: Mapping[str, float | None]) -> DataFrame:
    """``rows`` + :func:`nn_value` of every member_add input.

    ``rows``: ``[song_length, artist_song_cnt, artist_rec_cnt, song_rec_cnt, yy, ...]``.
    """
    return rows.select("*", *[nn_value(stem, fill) for stem in MEMBER_ADD_VALUES])


def fit_nn_fill(songs: DataFrame, rows: DataFrame | None = None) -> dict[str, float | None]:
    """The ``fill`` of :func:`add_nn_values`. Full profile (``rows=None``): the mean of every
    input over ``songs`` (one row per song). Serving: the means of the static inputs over
    ``songs`` (the songs of the fit rows) and of the cumulative counts over ``rows`` (the fit
    rows)."""
    if rows is None:
        return column_means(songs, list(MEMBER_ADD_VALUES))
    return {**column_means(songs, NN_STATIC), **column_means(rows, NN_COUNTS)}


def member_add_aggregates(frame: WindowSpec | None) -> list[Column]:
    """The member_add means, sample stds (ddof=1) and language shares over ``frame`` (per event)
    or as aggregates of a ``groupBy`` of the user (``frame=None``)."""
    out: list[Column] = []
    for stem, column in MEMBER_ADD_VALUES.items():
        out.append(over(F.avg(column), frame).alias(f"msno_{stem}_mean"))
        out.append(over(F.stddev_samp(column), frame).alias(f"msno_{stem}_std"))
    out += [
        over(F.avg((F.col("language") == c).cast("double")), frame).alias(f"msno_language_{c}")
        for c in LANGUAGE_SHARE_CODES
    ]
    return out


def member_add_batch(rows: DataFrame, basis: Column | None) -> DataFrame:
    """BATCH member_add, one row per user with a basis row: ``[_user, msno_{x}_mean/std ...,
    msno_language_0..9, artist_msno_cnt]``.

    ``rows``: ``[msno, artist_name, language, _nn_* ...]``. Means and sample stds (ddof=1, null for
    one row) of the NN values over the user's basis rows; ``artist_msno_cnt`` = log1p(number of
    distinct artist codes, the missing code counted as one); ``msno_language_c`` = the fraction of
    the user's basis rows with language code ``c``.
    """
    counted = rows if basis is None else rows.where(basis)
    return counted.groupBy(F.col("msno").alias("_user")).agg(
        *member_add_aggregates(None),
        log_count(F.countDistinct("artist_name")).alias("artist_msno_cnt"),
    )


def add_member_add_cumulative(rows: DataFrame) -> DataFrame:
    """Serving member_add per row over the user's rows with a strictly smaller idx.

    Means / shares are null without earlier rows, stds with fewer than two; ``artist_msno_cnt``
    = log1p(distinct artist codes among earlier rows), 0 without earlier rows.
    """
    same_artist = earlier("msno", "artist_name")
    first_of_artist = F.count(F.lit(1)).over(same_artist) == 0
    marked = rows.withColumn("_new_artist", first_of_artist.cast("long"))
    artists = F.coalesce(F.sum("_new_artist").over(earlier("msno")), F.lit(0))
    return marked.select(
        *rows.columns,
        *member_add_aggregates(earlier("msno")),
        log_count(artists).alias("artist_msno_cnt"),
    )


def member_add_state() -> list[Column]:
    """member_add "now": the aggregates of :func:`member_add_aggregates` for a ``groupBy`` of the
    user over the log's rows (with their NN values); with :func:`artist_count_state` and
    :func:`member_add_from_state` the features of an event appended after the log."""
    return member_add_aggregates(None)


def artist_count_state(rows: DataFrame) -> DataFrame:
    """``[msno, _msno_artists]``: the distinct artist codes of each user's rows, the missing code
    (null) counted as one, as the per-event form counts them."""
    artists = rows.groupBy("msno", "artist_name").count()
    return artists.groupBy("msno").agg(F.count(F.lit(1)).alias(ARTISTS_STATE))


def member_add_from_state() -> dict[str, Column]:
    """``artist_msno_cnt`` of an event appended after the log from :func:`artist_count_state`."""
    return {"artist_msno_cnt": log_count(F.coalesce(F.col(ARTISTS_STATE), F.lit(0)))}
