"""Features added at LightGBM time (FEATURES.md step 9).

* the song table joined for the previous and next event of the user (``before_X``, ``after_X``);
  a user's first / last event joins its own song;
* ``before/after_type_same``, ``before/after_artist_same`` (1.0 / 0.0);
* ``time_spent``, ``time_left``, ``duration`` (int seconds; ``duration`` is in the member table).

Song columns that are one value per song in the profile are joined on the neighbour's song key
(:func:`packed_lookup`); song columns that are per-row values (serving: cumulative counts;
both profiles: the song time statistics) are copied from the neighbouring row
(:func:`add_neighbor_values`), which for a per-song value is the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

# song-table columns joined for the neighbours (the 388 list's before_/after_ names, plus what the
# flags and the nets need); SVD component columns are added by the caller
BEFORE_SONG_COLUMNS = (
    "song_length",
    "language",
    "first_genre_id",
    "cc",
    "artist_song_cnt",
    "genre_song_cnt",
    "song_rec_cnt",
    "artist_rec_cnt",
    "genre_rec_cnt",
    "song_timestamp_mean",
    "song_timestamp_std",
)
AFTER_SONG_COLUMNS = (*BEFORE_SONG_COLUMNS, "composer_song_cnt")


def add_neighbor_values(rows: DataFrame, columns: Sequence[str], include_after: bool) -> DataFrame:
    """``rows`` + ``before_<c>`` (and ``after_<c>``) for each per-row column ``c``: its value on
    the user's previous (next) event; the first (last) event takes its own value.

    ``rows``: ``[idx, msno, <columns> ...]``. The previous event is read with ``last`` over a range
    frame ending at ``idx - 1`` (rows tied at one idx never see each other); the next with ``first``
    over a frame starting at ``idx + 1`` (full profile only).
    """
    by_user = Window.partitionBy("msno").orderBy("idx")
    earlier = by_user.rangeBetween(Window.unboundedPreceding, -1)
    later = by_user.rangeBetween(1, Window.unboundedFollowing)
    has_prev = F.count(F.lit(1)).over(earlier) > 0
    has_next = F.count(F.lit(1)).over(later) > 0
    out = [
        F.when(has_prev, F.last(c).over(earlier)).otherwise(F.col(c)).alias(f"before_{c}") for c in columns
    ]
    if include_after:
        out += [
            F.when(has_next, F.first(c).over(later)).otherwise(F.col(c)).alias(f"after_{c}") for c in columns
        ]
    return rows.select("*", *out)


def packed_lookup(
    rows: DataFrame, table: DataFrame, key: str, table_key: str, columns: Mapping[str, str], tag: str
) -> tuple[DataFrame, list[Column]]:
    """Left-join ``table`` (one row per ``table_key``, broadcast) onto ``rows`` by ``rows[key]``,
    its ``columns`` (output name -> column of ``table``) packed into one array column per data
    type (``<tag>_0``, ``<tag>_1``, ...); returns the joined frame and the columns that unpack them (null
    when no row matches).

    Select the unpacking columns once, after the last lookup. Why: an operator whose output has
    more than ``spark.sql.codegen.maxFields`` (100) fields, nested struct fields included, runs
    without whole-stage code generation, and a join that does copies every column of its row;
    four flat joins of ~100 columns onto a ~100-column frame copied ~1,200 values per row. An
    array is one field, so the packed joins stay generated and the final projection copies
    each value once.
    """
    types = dict(table.dtypes)
    groups: dict[str, list[str]] = {}
    for name, source in columns.items():
        groups.setdefault(types[source], []).append(name)
    arrays = {dtype: f"{tag}_{index}" for index, dtype in enumerate(groups)}
    packed = table.select(
        F.col(table_key).alias(f"{tag}_key"),
        *[
            F.array(*[F.col(columns[n]) for n in names]).alias(arrays[dtype])
            for dtype, names in groups.items()
        ],
    )
    joined = rows.join(F.broadcast(packed), rows[key] == F.col(f"{tag}_key"), "left").drop(f"{tag}_key")
    unpack = {
        name: F.col(arrays[dtype])[position].alias(name)
        for dtype, names in groups.items()
        for position, name in enumerate(names)
    }
    return joined, [unpack[name] for name in columns]


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


def time_columns() -> list[Column]:
    """``time_spent`` = timestamp - registration_init_time and ``time_left`` = expiration_date -
    timestamp, truncated to int32 like the thesis (null when an input is null or out of range)."""
    spent = (F.col("timestamp") - F.col("registration_init_time")).try_cast("int")
    left = (F.col("expiration_date") - F.col("timestamp")).try_cast("int")
    return [spent.alias("time_spent"), left.alias("time_left")]
