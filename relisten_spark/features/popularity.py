"""Popularity counters (FEATURES.md steps 2 and 3): ``*_song_cnt``, ``*_rec_cnt``, ``msno_rec_cnt``.

For a key K of the song table (first artist, composer, lyricist, first genre, cc, xxx, yy):

* ``K_song_cnt`` = log1p(number of songs of the song universe with the same K);
* ``K_rec_cnt``  = log1p(number of counted rows whose song has the same K);
* ``song_rec_cnt`` = log1p(number of counted rows of the song), ``msno_rec_cnt`` the same per user.

A missing K gives a null count (the intended meaning of the thesis's "code 0 -> null" rule).

Full profile (BATCH): the song universe is every song of the counted rows and the counted rows are
all train + test rows. Serving profile (cumulative): for the row at ``idx = i`` the counted rows are
the rows with ``idx < i`` and the song universe is the songs first seen before ``i``.

State now (scoring, an event appended after the log): the song counts are
:func:`song_counts_batch` over the log's rows and songs; the user count is the user's row count
(:func:`~relisten_spark.features.columns.rows_state`, see :func:`user_counts_from_state`).
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from relisten_spark.features.columns import earlier, log_count, rows_before
from relisten_spark.features.encode import COUNT_KEYS
from relisten_spark.features.isrc import ISRC_COUNT_KEYS

# output prefix -> song-table key column
SONG_KEYS: dict[str, str] = {**COUNT_KEYS, **ISRC_COUNT_KEYS}


def count_columns(keys: Mapping[str, str]) -> list[str]:
    """Names of the count columns produced for ``keys`` (song_rec_cnt first).

    >>> count_columns({"artist": "_k_artist"})
    ['song_rec_cnt', 'artist_song_cnt', 'artist_rec_cnt']
    """
    names = ["song_rec_cnt"]
    for prefix in keys:
        names += [f"{prefix}_song_cnt", f"{prefix}_rec_cnt"]
    return names


def song_counts_batch(songs: DataFrame, rows: DataFrame, keys: Mapping[str, str] = SONG_KEYS) -> DataFrame:
    """BATCH counts per song (also the serving state now: ``rows`` = the whole log).

    ``songs``: ``[_song, <key columns>]`` (the song universe); ``rows``: ``[song_id int (song
    key)]``, the counted rows. Returns ``[_song, song_rec_cnt, <prefix>_song_cnt,
    <prefix>_rec_cnt ...]`` (doubles, log1p).
    """
    per_song = rows.groupBy(F.col("song_id").alias("_song")).agg(F.count(F.lit(1)).alias("_n"))
    table = songs.select("_song", *keys.values()).join(per_song, "_song", "left").fillna(0, ["_n"])
    out = table.select("_song", log_count(F.col("_n")).alias("song_rec_cnt"))
    for prefix, key in keys.items():
        per_key = (
            table.where(F.col(key).isNotNull())
            .groupBy(key)
            .agg(
                log_count(F.count(F.lit(1))).alias(f"{prefix}_song_cnt"),
                log_count(F.sum("_n")).alias(f"{prefix}_rec_cnt"),
            )
        )
        with_key = table.select("_song", key).join(F.broadcast(per_key), key, "left").drop(key)
        out = out.join(with_key, "_song", "left")
    return out


def _key_or_unique(key: Column, idx: Column) -> Column:
    """The key, or a per-row unique negative value when it is null (no skewed null partition)."""
    return F.coalesce(key.cast("string"), F.concat(F.lit("#"), idx.cast("string")))


def add_song_counts_cumulative(rows: DataFrame, keys: Mapping[str, str] = SONG_KEYS) -> DataFrame:
    """Serving counts per row: ``rows`` ``[idx, song_id, <key columns>, ...]`` + the count columns.

    A row sees only rows with a smaller idx (rows tied at one idx do not see each other).
    """
    earlier_song = F.count(F.lit(1)).over(earlier(F.col("song_id")))
    df = rows.withColumn("_song_seen", earlier_song)
    df = df.withColumn("_first", (F.col("_song_seen") == 0).cast("long"))
    outputs = [log_count(F.col("_song_seen")).alias("song_rec_cnt")]
    for prefix, key in keys.items():
        window = earlier(_key_or_unique(F.col(key), F.col("idx")))
        songs_before = F.coalesce(F.sum("_first").over(window), F.lit(0))
        rows_before_key = F.count(F.lit(1)).over(window)
        missing = F.col(key).isNull()
        outputs.append(F.when(~missing, log_count(songs_before)).alias(f"{prefix}_song_cnt"))
        outputs.append(F.when(~missing, log_count(rows_before_key)).alias(f"{prefix}_rec_cnt"))
    return df.select(*rows.columns, *outputs)


def user_counts_batch(rows: DataFrame) -> DataFrame:
    """``[_user, msno_rec_cnt]``: log1p(number of counted rows of the user)."""
    return rows.groupBy(F.col("msno").alias("_user")).agg(log_count(F.count(F.lit(1))).alias("msno_rec_cnt"))


def add_user_counts_cumulative(rows: DataFrame) -> DataFrame:
    """``rows`` + ``msno_rec_cnt`` = log1p(number of the user's rows with a smaller idx)."""
    seen = F.count(F.lit(1)).over(earlier(F.col("msno")))
    return rows.withColumn("msno_rec_cnt", log_count(seen))


def user_counts_from_state() -> dict[str, Column]:
    """``msno_rec_cnt`` of an event appended after the log, from the user's row count state."""
    return {"msno_rec_cnt": log_count(rows_before("msno"))}
