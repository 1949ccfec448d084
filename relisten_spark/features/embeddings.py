"""The thesis's SVD embeddings (FEATURES.md step 4): the factor tables of the user x song and user
x artist matrices (:func:`fit_svd_factors`, by :func:`~relisten_spark.features.svd.randomized_svd`),
their dot features (:func:`add_svd_dots`), and the five silver tables that keep them
(:func:`svd_tables`, read back by :func:`read_factors`).

Factors are unit-norm, NOT scaled by s, ordered by descending singular value.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from relisten_spark import lake
from relisten_spark.errors import InputError
from relisten_spark.features.columns import require_columns
from relisten_spark.features.svd import randomized_svd, session_buckets

SVD_TABLES = ("svd_member", "svd_song", "svd_member_artist", "svd_artist", "svd_values")


@dataclass(frozen=True)
class SvdFactors:
    """The fitted embeddings. The frames are persisted lazily and computed from cached SVD
    intermediates: call :meth:`unpersist` when they are written and joined.

    * ``member``: ``[msno int, member_component_0..k-1 float]`` (U of user x song),
    * ``song``: ``[song_id int, song_component_0..k-1 float]`` (V of user x song),
    * ``member_artist``: ``[msno int, member_artist_component_0..ka-1 float]`` (U of user x artist),
    * ``artist``: ``[artist_name int, artist_component_0..ka-1 float]`` (V of user x artist),
    * ``song_values`` / ``artist_values``: the singular values, descending.

    One row per user / song code of ``ev`` and per artist of ``song_artist``; an entity without
    fit rows gets a zero vector.
    """

    member: DataFrame
    song: DataFrame
    member_artist: DataFrame
    artist: DataFrame
    song_values: tuple[float, ...]
    artist_values: tuple[float, ...]
    cached: tuple[DataFrame, ...] = ()

    def values_frame(self, spark: SparkSession) -> DataFrame:
        """``[matrix string ('user_song' | 'user_artist'), component int, value double]``."""
        rows = [("user_song", j, v) for j, v in enumerate(self.song_values)]
        rows += [("user_artist", j, v) for j, v in enumerate(self.artist_values)]
        return spark.createDataFrame(rows, "matrix string, component int, value double")

    def unpersist(self) -> None:
        for frame in (self.member, self.song, self.member_artist, self.artist, *self.cached):
            frame.unpersist()


def song_entries(fit: DataFrame) -> DataFrame:
    """The binary user x song matrix of the rows ``fit``: ``[row, col, value=1.0]`` per distinct
    (msno, song_id)."""
    pairs = fit.select(F.col("msno").cast("int").alias("row"), F.col("song_id").cast("int").alias("col"))
    return pairs.distinct().withColumn("value", F.lit(1.0))


def artist_entries(fit: DataFrame, song_artist: DataFrame) -> DataFrame:
    """The user x artist matrix of the rows ``fit``: c = #rows of the user whose song's first
    artist is the artist (songs without a known artist left out), entry 0.3*ln(1+c)+1."""
    artists = song_artist.where(F.col("artist_name").isNotNull()).select("song_id", "artist_name")
    counts = (
        fit.select("msno", "song_id")
        .join(artists, on="song_id")
        .groupBy(F.col("msno").cast("int").alias("row"), F.col("artist_name").cast("int").alias("col"))
        .agg(F.count(F.lit(1)).alias("c"))
    )
    return counts.select("row", "col", (F.lit(0.3) * F.log1p(F.col("c")) + F.lit(1.0)).alias("value"))


def _wide(keys: DataFrame, key: str, vectors: DataFrame, prefix: str, k: int) -> DataFrame:
    """One row per key: ``[key, prefix_0..prefix_{k-1} float]``, zeros where ``vectors`` has none."""
    joined = keys.join(vectors, keys[key] == vectors["id"], "left")
    components = [F.coalesce(F.col("vec")[j], F.lit(0.0)).cast("float") for j in range(k)]
    named = [c.alias(f"{prefix}_{j}") for j, c in enumerate(components)]
    return joined.select(keys[key], *named).persist(StorageLevel.MEMORY_AND_DISK)


def fit_svd_factors(
    spark: SparkSession,
    ev: DataFrame,
    song_artist: DataFrame,
    fit_mask: Column | None,
    k_song: int,
    k_artist: int,
    oversample: int,
    power_iters: int,
    seed: int,
    local_max_nnz: int = 2_000_000,
) -> SvdFactors:
    """Fit both SVDs on the rows of ``ev`` where ``fit_mask`` holds (every row when None).

    ``ev``: ``[msno int, song_id int, ...]`` (key codes); ``song_artist``: ``[song_id int,
    artist_name int]``, one row per song with a known first artist. The work is split into
    ``spark.sql.shuffle.partitions`` buckets. Full profile: ``fit_mask=None`` (BATCH, the
    thesis); serving: the fit rows (train rows before the holdout cutoff). A matrix with at
    most ``local_max_nnz`` non-zeros (``features.svd_local_max_nnz``) is factorised on the driver
    with scipy ``svds``, a larger one by the distributed randomized SVD (see the module).
    """
    require_columns(ev, ["msno", "song_id"], "fit_svd_factors")
    require_columns(song_artist, ["song_id", "artist_name"], "fit_svd_factors (song_artist)")
    fit = ev if fit_mask is None else ev.where(fit_mask)
    options = {
        "oversample": oversample,
        "power_iters": power_iters,
        "buckets": session_buckets(spark),
        "local_max_nnz": local_max_nnz,
    }
    songs = randomized_svd(song_entries(fit), k_song, seed=seed, name="user_song", **options)
    artists = randomized_svd(
        artist_entries(fit, song_artist), k_artist, seed=seed + 1, name="user_artist", **options
    )
    users = ev.select("msno").distinct()
    known_artists = song_artist.where(F.col("artist_name").isNotNull()).select("artist_name").distinct()
    return SvdFactors(
        member=_wide(users, "msno", songs.rows, "member_component", k_song),
        song=_wide(ev.select("song_id").distinct(), "song_id", songs.cols, "song_component", k_song),
        member_artist=_wide(users, "msno", artists.rows, "member_artist_component", k_artist),
        artist=_wide(known_artists, "artist_name", artists.cols, "artist_component", k_artist),
        song_values=songs.values,
        artist_values=artists.values,
        cached=songs.cached + artists.cached,
    )


def _packed(frame: DataFrame, key: str, prefix: str, scale: tuple[float, ...], alias: str) -> DataFrame:
    """``[_<alias>_key, <alias> array<double>]``: component j times ``scale[j]``."""
    parts = [F.col(f"{prefix}_{j}").cast("double") * F.lit(float(s)) for j, s in enumerate(scale)]
    return frame.select(F.col(key).alias(f"_{alias}_key"), F.array(*parts).alias(alias))


def _dot(left: str, right: str, k: int) -> Column:
    terms = [F.col(left)[j] * F.col(right)[j] for j in range(k)]
    total = terms[0] if terms else F.lit(0.0)
    for term in terms[1:]:
        total = total + term
    return total


def add_svd_dots(ev: DataFrame, factors: SvdFactors) -> DataFrame:
    """``ev`` + ``song_embeddings_dot`` = Σⱼ U[msno,j]·s_j·V[song,j] (the rank-k reconstruction
    at (user, song)) and ``artist_embeddings_dot`` = the same on the user x artist SVD for the
    song's first artist (doubles; BATCH, serving: fit on the fit rows).

    ``ev``: ``[msno int, song_id int, artist_name int, ...]``. A user or song without a factor
    row counts as a zero vector (dot 0); ``artist_embeddings_dot`` is null when ``artist_name``
    has no row in ``factors.artist`` (missing or unknown artist).
    """
    require_columns(ev, ["msno", "song_id", "artist_name"], "add_svd_dots")
    k, ka = len(factors.song_values), len(factors.artist_values)
    ones = (1.0,) * ka
    us = _packed(factors.member, "msno", "member_component", factors.song_values, "_us")
    v = _packed(factors.song, "song_id", "song_component", (1.0,) * k, "_v")
    uas = _packed(factors.member_artist, "msno", "member_artist_component", factors.artist_values, "_uas")
    va = _packed(factors.artist, "artist_name", "artist_component", ones, "_va")
    joined = (
        ev.join(F.broadcast(us), ev["msno"] == us["__us_key"], "left")
        .join(v, ev["song_id"] == v["__v_key"], "left")
        .join(F.broadcast(uas), ev["msno"] == uas["__uas_key"], "left")
        .join(F.broadcast(va), ev["artist_name"] == va["__va_key"], "left")
    )
    song_dot = F.coalesce(_dot("_us", "_v", k), F.lit(0.0))
    artist_dot = F.when(F.col("__va_key").isNull(), F.lit(None).cast("double")).otherwise(
        F.coalesce(_dot("_uas", "_va", ka), F.lit(0.0))
    )
    return joined.select(
        *[ev[c] for c in ev.columns],
        song_dot.alias("song_embeddings_dot"),
        artist_dot.alias("artist_embeddings_dot"),
    )


def svd_tables(
    spark: SparkSession, factors: SvdFactors, users: DataFrame, songs: DataFrame, profile: str
) -> dict[str, DataFrame]:
    """The five silver tables of :data:`SVD_TABLES`, keyed by raw ids (artist by code), with
    ``profile``. ``users``: ``[_user, msno (raw)]``; ``songs``: ``[_song, song_id (raw)]`` (the key
    codes of ``factors``)."""
    tag = F.lit(profile).alias("profile")

    def by_user(frame: DataFrame) -> DataFrame:
        joined = frame.withColumnRenamed("msno", "_user").join(users, "_user")
        return joined.select(tag, "msno", *[c for c in frame.columns if c != "msno"])

    song = factors.song.withColumnRenamed("song_id", "_song").join(songs, "_song")
    return {
        "svd_member": by_user(factors.member),
        "svd_song": song.select(tag, "song_id", *[c for c in factors.song.columns if c != "song_id"]),
        "svd_member_artist": by_user(factors.member_artist),
        "svd_artist": factors.artist.select(tag, *factors.artist.columns),
        "svd_values": factors.values_frame(spark).select(tag, "matrix", "component", "value"),
    }


def read_svd_table(spark: SparkSession, root: str, name: str, profile: str) -> DataFrame:
    """The ``profile`` rows of the silver SVD table ``name`` (without the ``profile`` column)."""
    path = lake.table_path(root, "silver", name)
    if not lake.exists(path):
        raise InputError(
            f"SVD table {path} not found: run `relisten features --set features.profile={profile}`"
        )
    return lake.read(spark, path, where={"profile": profile}).drop("profile")


def read_factors(spark: SparkSession, root: str, profile: str) -> SvdFactors:
    """The factors of ``profile`` from the silver tables (keyed by raw msno / song_id and the
    artist code)."""

    def table(name: str) -> DataFrame:
        return read_svd_table(spark, root, name, profile)

    values = table("svd_values").orderBy("matrix", "component").collect()  # k + ka small rows
    return SvdFactors(
        member=table("svd_member"),
        song=table("svd_song"),
        member_artist=table("svd_member_artist"),
        artist=table("svd_artist"),
        song_values=tuple(float(r["value"]) for r in values if r["matrix"] == "user_song"),
        artist_values=tuple(float(r["value"]) for r in values if r["matrix"] == "user_artist"),
    )
