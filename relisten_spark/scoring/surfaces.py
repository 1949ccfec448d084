"""Product surfaces: their catalog filters, candidate pools and the context of a scored event.

A surface (``scoring.surfaces.<name>``, :class:`~relisten_spark.config.SurfaceConfig`) says which
songs it may show (song length bounds), how many (``top_n``, default ``scoring.top_n``), the
context a recommendation is scored in (the source tab / screen / type the surface stands for),
whether songs the user already heard are excluded, and how many songs one artist may take.

Songs without metadata have no length: a surface with a length bound leaves them out. The
artist of the cap is the raw ``artist_name``; a song without one is its own artist
(``song:<song_id>``), so unknown artists are never capped together.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from relisten_spark.config import ScoringConfig, SurfaceConfig
from relisten_spark.errors import ConfigError
from relisten_spark.scoring import candidates

POOL_COLUMNS = ["msno", "song_id", "artist_key", "source", "cand_rank"]


def surface_top_n(scoring: ScoringConfig, name: str) -> int:
    """N of surface ``name``: its own ``top_n`` or ``scoring.top_n``."""
    return scoring.surfaces[name].top_n or scoring.top_n


def check_surfaces(scoring: ScoringConfig) -> None:
    """Raise :class:`ConfigError` for surfaces that cannot be filled from the candidate pool."""
    if not scoring.surfaces:
        raise ConfigError("scoring.surfaces is empty: configure at least one surface")
    for name, surface in scoring.surfaces.items():
        n = surface_top_n(scoring, name)
        if scoring.candidates < n:
            raise ConfigError(
                f"scoring.candidates ({scoring.candidates}) is smaller than "
                f"scoring.surfaces.{name}.top_n ({n})"
            )
        lo, hi = surface.min_song_length_ms, surface.max_song_length_ms
        if lo is not None and hi is not None and lo > hi:
            raise ConfigError(
                f"scoring.surfaces.{name}: min_song_length_ms ({lo}) > max_song_length_ms ({hi})"
            )


def all_users(events: DataFrame, members: DataFrame) -> DataFrame:
    """``[msno]``: every user of bronze.members or the events, once."""
    return (
        members.select("msno").unionByName(events.select("msno")).where(F.col("msno").isNotNull()).distinct()
    )


def heard_pairs(events: DataFrame) -> DataFrame:
    """``[msno, song_id]``: the distinct pairs of the log (train and test rows)."""
    return events.select("msno", "song_id").where(F.col("song_id").isNotNull()).distinct()


def song_catalog(events: DataFrame, songs: DataFrame) -> DataFrame:
    """``[song_id, song_length, artist_key]``: every song of the log with its metadata.

    Only songs that occur in the log can become candidates (they alone have factors or plays).
    """
    played = events.select("song_id").where(F.col("song_id").isNotNull()).distinct()
    meta = songs.select("song_id", "song_length", "artist_name").dropDuplicates(["song_id"])
    return played.join(meta, "song_id", "left").select(
        "song_id",
        "song_length",
        F.coalesce(F.col("artist_name"), F.concat(F.lit("song:"), F.col("song_id"))).alias("artist_key"),
    )


def surface_catalog(catalog: DataFrame, surface: SurfaceConfig) -> DataFrame:
    """``[song_id, artist_key]``: the songs of ``catalog`` that ``surface`` may show."""
    keep = F.lit(True)
    if surface.min_song_length_ms is not None:
        keep = keep & (F.col("song_length") >= surface.min_song_length_ms)
    if surface.max_song_length_ms is not None:
        keep = keep & (F.col("song_length") <= surface.max_song_length_ms)
    return catalog.where(F.coalesce(keep, F.lit(False))).select("song_id", "artist_key")


def candidate_pool(
    users: DataFrame,
    nearest: DataFrame,
    plays: DataFrame,
    heard: DataFrame,
    catalog: DataFrame,
    surface: SurfaceConfig,
    k: int,
) -> DataFrame:
    """Each user's ``k`` candidates for one surface: nearest songs first, popular songs after.

    ``users`` ``[msno]``; ``nearest`` ``[msno, song_id, factor_rank, ...]``; ``plays``
    ``[song_id, plays]``; ``heard`` ``[msno, song_id]``; ``catalog`` ``[song_id, artist_key]``
    from :func:`surface_catalog`. Nearest songs outside the catalog (or heard, when the surface
    excludes them) are dropped. A user left with ``m < k`` of them (no factors, or a list the
    filters emptied) is filled with the most played catalog songs they may see: they are looked
    for among the first ``k + m + h`` popular songs, ``h`` the user's heard songs in the catalog
    when excluded, so the fill reaches ``k`` whenever the catalog holds enough songs for them.
    Returns :data:`POOL_COLUMNS` with ``source`` in {nearest, popular} and ``cand_rank``
    1..(at most) k.
    """
    near = nearest.join(catalog, "song_id").select("msno", "song_id", "artist_key", "factor_rank")
    if surface.exclude_heard:
        near = near.join(heard, ["msno", "song_id"], "left_anti")
    extra = near.groupBy("msno").agg(F.count("*").alias("_near"))
    short = users.join(extra, "msno", "left").fillna(0, ["_near"]).where(F.col("_near") < k)
    if surface.exclude_heard:
        heard_in = (
            heard.join(catalog.select("song_id"), "song_id").groupBy("msno").agg(F.count("*").alias("_h"))
        )
        short = short.join(heard_in, "msno", "left").fillna(0, ["_h"])
    else:
        short = short.withColumn("_h", F.lit(0))
    short = short.select("msno", (F.lit(k) + F.col("_near") + F.col("_h")).alias("_limit"))
    [(longest,)] = short.agg(F.max("_limit")).collect()  # one number: how deep any user must look
    popular = candidates.popular_songs(plays, catalog, int(longest or 0)).join(catalog, "song_id")
    fill = short.join(F.broadcast(popular), F.col("pop_rank") <= F.col("_limit"))
    if surface.exclude_heard:
        fill = fill.join(heard, ["msno", "song_id"], "left_anti")
    fill = fill.join(near.select("msno", "song_id"), ["msno", "song_id"], "left_anti")
    both = _ranked(near, "nearest", 0, "factor_rank").unionByName(_ranked(fill, "popular", 1, "pop_rank"))
    order = Window.partitionBy("msno").orderBy("_prio", "_r", "song_id")
    return (
        both.withColumn("cand_rank", F.row_number().over(order))
        .where(F.col("cand_rank") <= k)
        .select(*POOL_COLUMNS)
    )


def _ranked(pool: DataFrame, source: str, priority: int, rank_col: str) -> DataFrame:
    """``[msno, song_id, artist_key, source, _prio, _r]``: one source's songs of the pool, their
    rank in it as ``_r`` (the pool's order: ``_prio``, then ``_r``)."""
    return pool.select(
        "msno",
        "song_id",
        "artist_key",
        F.lit(source).alias("source"),
        F.lit(priority).alias("_prio"),
        F.col(rank_col).alias("_r"),
    )


def eligible_counts(
    users: DataFrame, heard: DataFrame, catalog: DataFrame, surface: SurfaceConfig
) -> DataFrame:
    """``[msno, eligible long]``: songs of the surface's catalog each user may be shown.

    The catalog size, less the user's heard songs in it when the surface excludes them.
    """
    size = catalog.agg(F.count("*").alias("_size"))
    base = users.crossJoin(size)
    if not surface.exclude_heard:
        return base.select("msno", F.col("_size").alias("eligible"))
    heard_in = heard.join(catalog.select("song_id"), "song_id").groupBy("msno").agg(F.count("*").alias("_h"))
    return base.join(heard_in, "msno", "left").select(
        "msno", (F.col("_size") - F.coalesce(F.col("_h"), F.lit(0))).alias("eligible")
    )
