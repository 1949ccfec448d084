"""ISRC decoding (FEATURES.md step 3): country, registrant, year and the missing flag.

The ISRC counters (cc/xxx/yy ``_song_cnt`` and ``_rec_cnt``) are the generic key counts of
:mod:`relisten_spark.features.popularity`, keyed by :data:`ISRC_COUNT_KEYS`.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

# output prefix -> key column of the song table (null key -> null count)
ISRC_COUNT_KEYS = {"cc": "_k_cc", "xxx": "_k_xxx", "yy": "yy"}


def isrc_year(two_digits: Column) -> Column:
    """``yy`` -> 4-digit year: 2000 + yy if yy < 18 else 1900 + yy (double); non-digits -> null."""
    yy = two_digits.try_cast("int").cast("double")
    return F.when(yy < 18, yy + 2000).otherwise(yy + 1900)


def parse_isrc(song_extra: DataFrame) -> DataFrame:
    """Decode bronze ``song_extra`` ``[song_id, name, isrc]``.

    Returns ``[song_id (raw), cc_raw string (isrc[0:2]), xxx_raw string (isrc[2:5]), yy double
    (year from isrc[5:7]), isrc string]``; a null isrc gives nulls.
    """
    isrc = F.col("isrc")
    return song_extra.dropDuplicates(["song_id"]).select(
        "song_id",
        F.substring(isrc, 1, 2).alias("cc_raw"),
        F.substring(isrc, 3, 3).alias("xxx_raw"),
        isrc_year(F.substring(isrc, 6, 2)).alias("yy"),
        isrc,
    )


def isrc_missing(isrc: Column) -> Column:
    """1 when the song has no ISRC (no song_extra row or a null isrc), else 0.

    The thesis flags ``cc == 0``, which under sklearn >= 0.24 is the alphabetically first
    country, not the missing ISRC (FEATURES.md section 5 item 7); this is the intended meaning.
    """
    return isrc.isNull().cast("int")
