"""The "add" features of FEATURES.md step 8: ``source``, P(f | user), P(c | song), member_add.

Basis: the thesis counts over TP+T (train rows whose (msno, song_id) pair also occurs in test
are left out, :func:`tp_basis`) and reads song attributes from the NN song table (mean-imputed
song_length, artist counts and yy; unknown artists share one code). Every row gets an output,
rows outside the basis included (their shares are looked up with the basis counts).

Serving: every aggregate is over the user's / song's rows with a strictly smaller ``idx``; the TP
filter needs test rows (the future), so every earlier row counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from relisten_spark.features.encode import SOURCE_COLUMNS, LabelCodes, apply_codes, fit_codes
from relisten_spark.features.probability import add_batch_shares, add_conditional_share

# P(f | user): output name -> value column of the rows frame
USER_SHARES = {
    "msno_artist_name_prob": "artist_name",
    "msno_first_genre_id_prob": "first_genre_id",
    "msno_xxx_prob": "xxx",
    "msno_language_prob": "language",
    "msno_yy_prob": "_nn_yy",
    "msno_source_prob": "source",
}
SONG_SHARES = {f"song_{c}_prob": c for c in SOURCE_COLUMNS}
# member_add statistics: name stem -> NN (mean-imputed) value column of the rows frame
MEMBER_ADD_VALUES = {
    "song_length": "_nn_song_length",
    "artist_song_cnt": "_nn_artist_song_cnt",
    "artist_rec_cnt": "_nn_artist_rec_cnt",
    "song_rec_cnt": "_nn_song_rec_cnt",
    "yy": "_nn_yy",
}
LANGUAGE_CODES = tuple(range(10))


def member_add_columns() -> list[str]:
    """The member_add output names in order.

    >>> member_add_columns()[:3]
    ['msno_song_length_mean', 'msno_song_length_std', 'msno_artist_song_cnt_mean']
    """
    names = []
    for stem in MEMBER_ADD_VALUES:
        names += [f"msno_{stem}_mean", f"msno_{stem}_std"]
    return [*names, "artist_msno_cnt", *[f"msno_language_{c}" for c in LANGUAGE_CODES]]


def _source_triple() -> Column:
    return (
        F.col("source_system_tab").cast("long") * 10000
        + F.col("source_screen_name").cast("long") * 100
        + F.col("source_type").cast("long")
    )


def fit_source_codes(ev: DataFrame, fit: Column) -> LabelCodes:
    """Fit the ``source`` encoder on the code triples of the fit rows of ``ev``."""
    return fit_codes(ev.where(fit).select(_source_triple().alias("_triple")), "_triple")


def add_source(ev: DataFrame, codes: LabelCodes) -> DataFrame:
    """``ev`` + ``source`` (int): the code of source_system_tab*10000 + source_screen_name*100 +
    source_type (the step-1 codes of the row). ROW."""
    with_triple = ev.withColumn("_triple", _source_triple())
    return apply_codes(with_triple, codes, "_triple", "source").drop("_triple")


def tp_basis(ev: DataFrame) -> Column:
    """The TP+T basis of the thesis as a column over ``ev`` ``[msno, song_id, split, ...]``: test
    rows, and train rows whose (msno, song_id) pair has no test row. 'score' rows are not counted.
    """
    pair = Window.partitionBy("msno", "song_id")
    in_test = F.max((F.col("split") == "test").cast("int")).over(pair) == 1
    return (F.col("split") == "test") | ((F.col("split") == "train") & ~in_test)


def add_nn_values(rows: DataFrame, fill: Mapping[str, float | None]) -> DataFrame:
    """``rows`` + ``_nn_<stem>``: the NN song-table value of each member_add input, nulls
    replaced by ``fill[stem]`` (the song-table mean, FEATURES.md step 7).

    ``rows``: ``[song_length, artist_song_cnt, artist_rec_cnt, song_rec_cnt, yy, ...]``.
    """
    filled = [
        F.coalesce(F.col(stem), F.lit(fill.get(stem))).cast("double").alias(column)
        for stem, column in MEMBER_ADD_VALUES.items()
    ]
    return rows.select("*", *filled)


def column_means(df: DataFrame, columns: Sequence[str]) -> dict[str, float | None]:
    """Mean of each column over ``df`` (nulls ignored); one small aggregation job."""
    row = df.agg(*[F.avg(c).alias(c) for c in columns]).first()
    return {c: (None if row is None or row[c] is None else float(row[c])) for c in columns}


def add_shares(
    rows: DataFrame, serving: bool, basis: Column | None, counted: DataFrame | None = None
) -> DataFrame:
    """``rows`` + the 6 ``msno_{f}_prob`` and 3 ``song_{c}_prob`` (doubles).

    ``rows``: ``[idx, msno, song_id, artist_name, first_genre_id, xxx, language, _nn_yy, source,
    source_*, ...]``. Missing values (code 0, the imputed year) form a group of their own.
    Full (BATCH) shares come from aggregate tables of ``counted`` (default ``rows``, see
    :func:`add_batch_shares`), serving ones from cumulative windows.
    """
    if not serving:
        counted = rows if counted is None else counted
        rows = add_batch_shares(rows, "msno", USER_SHARES, basis, counted)
        return add_batch_shares(rows, "song_id", SONG_SHARES, basis, counted)
    for out, value in USER_SHARES.items():
        rows = add_conditional_share(rows, "msno", value, out, serving, basis)
    for out, value in SONG_SHARES.items():
        rows = add_conditional_share(rows, "song_id", value, out, serving, basis)
    return rows


def _member_add_aggregates(frame: Window | None) -> list[Column]:
    """member_add expressions; ``frame=None`` gives plain aggregates (groupBy)."""

    def over(column: Column) -> Column:
        return column if frame is None else column.over(frame)

    out: list[Column] = []
    for stem, column in MEMBER_ADD_VALUES.items():
        out.append(over(F.avg(column)).alias(f"msno_{stem}_mean"))
        out.append(over(F.stddev_samp(column)).alias(f"msno_{stem}_std"))
    return out


def member_add_batch(rows: DataFrame, basis: Column | None) -> DataFrame:
    """BATCH member_add, one row per user with a basis row: ``[_user, msno_{x}_mean/std ...,
    artist_msno_cnt, msno_language_0..9]``.

    ``rows``: ``[msno, artist_name, language, _nn_* ...]``. Means and sample stds (ddof=1, null for
    one row) of the NN values over the user's basis rows; ``artist_msno_cnt`` = log1p(number of
    distinct artist codes, the missing code counted as one); ``msno_language_c`` = the fraction of
    the user's basis rows with language code ``c``.
    """
    counted = rows if basis is None else rows.where(basis)
    language = [
        F.avg((F.col("language") == c).cast("double")).alias(f"msno_language_{c}") for c in LANGUAGE_CODES
    ]
    return counted.groupBy(F.col("msno").alias("_user")).agg(
        *_member_add_aggregates(None),
        F.log1p(F.countDistinct("artist_name").cast("double")).alias("artist_msno_cnt"),
        *language,
    )


def add_member_add_cumulative(rows: DataFrame) -> DataFrame:
    """Serving member_add per row over the user's rows with a strictly smaller idx.

    Means / shares are null without earlier rows, stds with fewer than two; ``artist_msno_cnt``
    = log1p(distinct artist codes among earlier rows), 0 without earlier rows.
    """
    earlier = Window.partitionBy("msno").orderBy("idx").rangeBetween(Window.unboundedPreceding, -1)
    same_artist = Window.partitionBy("msno", "artist_name").orderBy("idx")
    first_of_artist = F.count(F.lit(1)).over(same_artist.rangeBetween(Window.unboundedPreceding, -1)) == 0
    marked = rows.withColumn("_new_artist", first_of_artist.cast("long"))
    language = [
        F.avg((F.col("language") == c).cast("double")).over(earlier).alias(f"msno_language_{c}")
        for c in LANGUAGE_CODES
    ]
    artists = F.coalesce(F.sum("_new_artist").over(earlier), F.lit(0))
    return marked.select(
        *rows.columns,
        *_member_add_aggregates(earlier),
        F.log1p(artists.cast("double")).alias("artist_msno_cnt"),
        *language,
    )
