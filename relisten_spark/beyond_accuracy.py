"""Beyond-accuracy measures of top-N lists, computed in Spark (no list reaches the driver).

Every measure is taken against a **reference log** (the events the lists were made from: the
whole log for the lists of ``relisten score``, the rows before the holdout cutoff for the
backtest's) and its songs (:func:`song_reference`). Per group of lists (e.g. surface, lever
setting), :func:`list_measures` returns ``[*group_cols, metric, value]`` with:

* ``catalog_coverage`` — distinct songs recommended / songs of the reference log;
* ``popularity_share`` — share of list rows whose song is among the 10 % most played songs of the
  reference log (plays descending, ``song_id`` ascending at the boundary);
* ``novelty`` — mean over rows of the self-information ``-log2(listeners / users)``: the share
  of the reference log's users who played the song;
* ``artist_diversity`` / ``genre_diversity`` — mean over lists of two or more rows of the share
  of row pairs with different artists (first genres): ``1 - sum_a c_a (c_a - 1) / (n (n - 1))``;
  a song without an artist (genre) is its own;
* ``heard_share`` — share of rows whose (user, song) occurs in the reference log;
* ``exposure_gini`` — Gini coefficient of the rows per song over every song of the reference
  log (0: all songs shown equally often; 1: one song takes every row);
* ``lists`` — number of user lists.

:func:`surface_overlap` adds ``overlap_<other>``: the mean over users with lists on both
surfaces of the Jaccard index of their two lists' songs.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

HEAD_SHARE = 0.1
MEASURES = (
    "catalog_coverage",
    "popularity_share",
    "novelty",
    "artist_diversity",
    "genre_diversity",
    "heard_share",
    "exposure_gini",
    "lists",
)


@dataclass(frozen=True)
class SongReference:
    """The reference log's songs and pairs.

    ``songs``: ``[song_id, plays long, head bool, info double, artist string, genre string]``,
    one row per song of the log (``head``: among the 10 % most played; ``info``: the song's
    self-information); ``heard``: ``[msno, song_id]``, the log's distinct pairs.
    """

    songs: DataFrame
    heard: DataFrame


def _own(value: Column) -> Column:
    """``value``, or ``song:<song_id>`` where it is missing (the song is its own group)."""
    return F.coalesce(value, F.concat(F.lit("song:"), F.col("song_id")))


def song_reference(events: DataFrame, songs: DataFrame) -> SongReference:
    """:class:`SongReference` of ``events`` ``[msno, song_id, ...]`` (the reference log) and
    ``songs`` (bronze.songs: ``[song_id, genre_ids, artist_name, ...]``)."""
    log = events.select("msno", "song_id").where(F.col("song_id").isNotNull() & F.col("msno").isNotNull())
    users = log.select("msno").distinct().agg(F.count("*").alias("_users"))
    per_song = log.groupBy("song_id").agg(
        F.count("*").alias("plays"), F.countDistinct("msno").alias("_listeners")
    )
    meta = songs.select(
        "song_id", "artist_name", F.split(F.col("genre_ids"), r"\|").getItem(0).alias("_genre")
    ).dropDuplicates(["song_id"])
    order = Window.orderBy(F.col("plays").desc(), F.col("song_id"))  # one small global ordering
    size = Window.partitionBy(F.lit(1))
    table = (
        per_song.crossJoin(users)
        .join(meta, "song_id", "left")
        .select(
            "song_id",
            "plays",
            (F.row_number().over(order) <= F.ceil(F.count("*").over(size) * F.lit(HEAD_SHARE))).alias("head"),
            (-F.log2(F.col("_listeners") / F.col("_users"))).alias("info"),
            _own(F.col("artist_name")).alias("artist"),
            _own(F.when(F.col("_genre") != "", F.col("_genre"))).alias("genre"),
        )
    )
    return SongReference(table, log.distinct())


def _diversity(values: str) -> Column:
    """``1 - sum_a c_a (c_a - 1) / (n (n - 1))`` of the array column ``values`` (one list's
    artists or genres); null for a list of fewer than two rows."""
    arr = F.col(values)
    n = F.size(arr)

    def pairs(value: Column) -> Column:
        count = F.size(F.filter(arr, lambda x: x == value))
        return (count * (count - 1)).cast("long")

    same = F.aggregate(F.array_distinct(arr), F.lit(0).cast("long"), lambda acc, v: acc + pairs(v))
    return F.when(n >= 2, F.lit(1.0) - same / (n * (n - 1)))


def _per_group(rows: DataFrame, keys: Sequence[str], group_cols: Sequence[str]) -> DataFrame:
    """``[*group_cols, popularity_share, novelty, heard_share, artist_diversity,
    genre_diversity, lists]`` from one aggregation per list, then one per group."""
    per_list = rows.groupBy(*keys).agg(
        F.count("*").alias("_n"),
        F.sum(F.coalesce(F.col("head").cast("double"), F.lit(0.0))).alias("_head"),
        F.sum("info").alias("_info"),
        F.count("info").alias("_with_info"),
        F.sum(F.coalesce("_heard", F.lit(0.0))).alias("_heard"),
        F.collect_list("artist").alias("_artists"),
        F.collect_list("genre").alias("_genres"),
    )
    return per_list.groupBy(*group_cols).agg(
        (F.sum("_head") / F.sum("_n")).alias("popularity_share"),
        (F.sum("_info") / F.sum("_with_info")).alias("novelty"),
        (F.sum("_heard") / F.sum("_n")).alias("heard_share"),
        F.avg(_diversity("_artists")).alias("artist_diversity"),
        F.avg(_diversity("_genres")).alias("genre_diversity"),
        F.count("*").alias("lists"),
    )


def _per_song(per_song: DataFrame, catalog: DataFrame, group_cols: Sequence[str]) -> DataFrame:
    """``[*group_cols, catalog_coverage, exposure_gini]`` from ``per_song`` ``[*group_cols,
    song_id, count]`` (rows per song shown) and ``catalog`` ``[_size]`` (one row).

    Gini over every song of the catalog: with the exposures sorted ascending,
    ``G = sum_i (2 i - n - 1) x_i / (n sum x)``; the songs of equal exposure x (c of them, after a
    songs of lower exposure) add ``x c (2 a + c - n)``.
    """
    levels = per_song.groupBy(*group_cols, F.col("count").alias("_x")).agg(F.count("*").alias("_c"))
    shown = levels.groupBy(*group_cols).agg(F.sum("_c").alias("_shown"))
    zero = shown.crossJoin(catalog).select(
        *group_cols, F.lit(0).cast("long").alias("_x"), (F.col("_size") - F.col("_shown")).alias("_c")
    )
    levels = levels.unionByName(zero).where(F.col("_c") > 0).crossJoin(catalog)
    below = Window.partitionBy(*group_cols).orderBy("_x").rowsBetween(Window.unboundedPreceding, -1)
    levels = levels.withColumn("_a", F.coalesce(F.sum("_c").over(below), F.lit(0)))
    term = F.col("_x") * F.col("_c") * (2 * F.col("_a") + F.col("_c") - F.col("_size"))
    return levels.groupBy(*group_cols).agg(
        (F.sum(F.when(F.col("_x") > 0, F.col("_c"))) / F.first("_size")).alias("catalog_coverage"),
        (F.sum(term) / (F.first("_size") * F.sum(F.col("_x") * F.col("_c")))).alias("exposure_gini"),
    )


def _long(wide: DataFrame, group_cols: Sequence[str], metrics: Sequence[str]) -> DataFrame:
    """``[*group_cols, *metrics]`` -> ``[*group_cols, metric, value double]``."""
    pairs = F.array(
        *[F.struct(F.lit(m).alias("metric"), F.col(m).cast("double").alias("value")) for m in metrics]
    )
    return wide.select(*group_cols, F.explode(pairs).alias("_m")).select(
        *group_cols, F.col("_m.metric").alias("metric"), F.col("_m.value").alias("value")
    )


def list_measures(recs: DataFrame, reference: SongReference, group_cols: Sequence[str] = ()) -> DataFrame:
    """The measures of the module docstring per group: ``[*group_cols, metric, value]``.

    ``recs``: ``[*group_cols, msno, song_id, ...]``, one row per list row (one list per group
    and user).
    """
    group_cols = list(group_cols)
    keys = [*group_cols, "msno"]
    songs = reference.songs
    rows = (
        recs.select(*keys, "song_id")
        .join(songs, "song_id", "left")
        .join(reference.heard.withColumn("_heard", F.lit(1.0)), ["msno", "song_id"], "left")
        .select(*keys, "song_id", "head", "info", "_heard", _own(F.col("artist")), _own(F.col("genre")))
    )
    rows = rows.toDF(*keys, "song_id", "head", "info", "_heard", "artist", "genre")
    catalog = songs.agg(F.count("*").alias("_size"))
    per_song = rows.join(songs.select("song_id"), "song_id").groupBy(*group_cols, "song_id").count()
    first = _per_group(rows, keys, group_cols)
    second = _per_song(per_song, catalog, group_cols)
    wide = first.join(second, group_cols, "left") if group_cols else first.crossJoin(second)
    return _long(wide, group_cols, MEASURES)


def surface_overlap(recs: DataFrame, group_cols: Sequence[str] = (), surface: str = "surface") -> DataFrame:
    """``[*group_cols, surface, metric = overlap_<other>, value]``: for each ordered pair of
    surfaces, the mean over users with both lists of ``|A & B| / |A | B|`` of their songs.

    ``recs``: ``[*group_cols, surface, msno, song_id, ...]``. The surfaces' names are read from
    the data (a handful of distinct values).
    """
    group_cols = list(group_cols)
    names = sorted(r[surface] for r in recs.select(surface).distinct().collect())  # a few surfaces
    lists = recs.select(*group_cols, surface, "msno", "song_id").distinct()
    sizes = lists.groupBy(*group_cols, surface, "msno").agg(F.count("*").alias("_n"))
    out = []
    for a, b in itertools.permutations(names, 2):
        left = lists.where(F.col(surface) == a).drop(surface)
        right = lists.where(F.col(surface) == b).drop(surface)
        common = left.join(right, [*group_cols, "msno", "song_id"]).groupBy(*group_cols, "msno").count()
        size_a = sizes.where(F.col(surface) == a).select(*group_cols, "msno", F.col("_n").alias("_a"))
        size_b = sizes.where(F.col(surface) == b).select(*group_cols, "msno", F.col("_n").alias("_b"))
        both = size_a.join(size_b, [*group_cols, "msno"]).join(common, [*group_cols, "msno"], "left")
        inter = F.coalesce(F.col("count"), F.lit(0))
        jaccard = inter / (F.col("_a") + F.col("_b") - inter)
        out.append(
            both.groupBy(*group_cols).agg(
                F.lit(a).alias(surface), F.lit(f"overlap_{b}").alias("metric"), F.avg(jaccard).alias("value")
            )
        )
    if not out:  # one surface: nothing to compare
        empty = recs.select(*group_cols, surface).limit(0)
        return empty.select(
            "*", F.lit(None).cast("string").alias("metric"), F.lit(None).cast("double").alias("value")
        )
    return functools.reduce(DataFrame.unionByName, out)
