"""The feature job's assembly, shared by both profiles: the per-entity tables (member / song
static columns, SVD factors, BATCH aggregates) broadcast-joined onto the per-row frame, the song
table three times (own, previous and next song), and the output columns in catalogue order.

Both profiles write the same column set (the full catalogue) so that they share one table
schema; columns outside a profile (FUTURE columns in serving) are typed nulls there.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from relisten_spark.config import Config
from relisten_spark.features.catalogue import catalogue
from relisten_spark.features.embeddings import SvdFactors
from relisten_spark.features.lookup import packed_lookup
from relisten_spark.features.manifest import profile_specs
from relisten_spark.features.neighbors import flag_columns, neighbour_song_columns
from relisten_spark.features.spec import Shape
from relisten_spark.features.timeline import membership_time_columns


def config_shape(cfg: Config) -> Shape:
    """The catalogue shape of ``cfg.features`` (windows, SVD ranks)."""
    features = cfg.features
    return Shape(tuple(features.windows), features.svd_song_k, features.svd_artist_k)


def output_columns(shape: Shape, profile: str) -> list[Column]:
    """Every catalogue column in catalogue order, cast to its dtype: the profile's columns from
    the frame, the others as typed nulls (both profiles share one table schema)."""
    present = {s.name for s in profile_specs(profile, shape)}
    return [
        (F.col(spec.name) if spec.name in present else F.lit(None)).cast(spec.dtype).alias(spec.name)
        for spec in catalogue(shape)
    ]


def user_table(member_t: DataFrame, factors: SvdFactors, batch: DataFrame | None) -> DataFrame:
    """One row per user key: member static columns, SVD user factors, BATCH aggregates (full)."""
    table = member_t.join(factors.member.withColumnRenamed("msno", "_user"), "_user", "left").join(
        factors.member_artist.withColumnRenamed("msno", "_user"), "_user", "left"
    )
    if batch is not None:
        table = table.join(batch, "_user", "left")
    return table


def song_table(song_t: DataFrame, factors: SvdFactors, batch: DataFrame | None) -> DataFrame:
    """One row per song key: static song columns, SVD song and artist factors, BATCH counts (full)."""
    table = song_t.join(factors.song.withColumnRenamed("song_id", "_song"), "_song", "left").join(
        F.broadcast(factors.artist), "artist_name", "left"
    )
    if batch is not None:
        table = table.join(batch, "_song", "left")
    return table


def assemble(rows: DataFrame, users: DataFrame, songs: DataFrame, shape: Shape, profile: str) -> DataFrame:
    """Join the per-entity tables (:func:`user_table`, :func:`song_table`) onto the per-row frame
    and select the keys ``idx, msno, song_id`` (raw ids), ``split, target, profile`` and the
    output columns. The lookups are packed (:func:`~relisten_spark.features.lookup.packed_lookup`):
    the ~450 columns are copied once, by the final projection."""
    serving = profile == "serving"
    present = set(rows.columns)
    user_cols = [c for c in users.columns if c not in present and c != "_user"]
    own_cols = [c for c in songs.columns if c not in present and c != "_song"]
    present |= {*user_cols, *own_cols}
    lookups = [("_lu", users, "msno", "_user", {c: c for c in user_cols})]
    lookups.append(("_ls", songs, "song_id", "_song", {c: c for c in own_cols}))
    for side in ["before"] if serving else ["before", "after"]:
        wanted = set(neighbour_song_columns(side, shape))
        stems = [c for c in songs.columns if c in wanted and f"{side}_{c}" not in present]
        lookups.append((f"_l{side}", songs, f"{side}_song_id", "_song", {f"{side}_{c}": c for c in stems}))
    df, unpacked = rows, []
    for tag, table, key, table_key, columns in lookups:
        df, unpack = packed_lookup(df, table, key, table_key, columns, tag)
        unpacked += unpack
    df = df.select(*rows.columns, *unpacked)
    df = df.select("*", *flag_columns(include_after=not serving), *membership_time_columns())
    keys = [
        F.col("idx").cast("long").alias("idx"),
        F.col("_raw_msno").alias("msno"),
        F.col("_raw_song").alias("song_id"),
        F.col("split"),
        F.col("target").cast("int").alias("target"),
        F.lit(profile).alias("profile"),
    ]
    return df.select(*keys, *output_columns(shape, profile))
