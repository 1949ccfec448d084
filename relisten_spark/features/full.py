"""The full profile's builder (the thesis's features): BATCH aggregates over every train and test
row (per-entity tables joined at the assembly), running windows in both directions, the next
event's columns (FUTURE)."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from relisten_spark.features import popularity
from relisten_spark.features.assemble import assemble, song_table, user_table
from relisten_spark.features.catalogue import SONG_TIME_STATS, SOURCE_SHARE_CODES
from relisten_spark.features.embeddings import SvdFactors, add_svd_dots
from relisten_spark.features.inputs import EncodedInputs, event_rows
from relisten_spark.features.probability import tp_basis
from relisten_spark.features.source_profile import add_song_source_probs, add_source_probs, user_source_shares
from relisten_spark.features.spec import Shape
from relisten_spark.features.timeline import add_timestamp, time_stats
from relisten_spark.features.user_affinity import (
    MEMBER_ADD_VALUES,
    NN_COUNTS,
    add_nn_values,
    add_user_shares,
    fit_nn_fill,
    member_add_batch,
)
from relisten_spark.features.windows import add_sequence_features
from relisten_spark.runtime import Held, checkpoint


def _counted(rows: DataFrame) -> DataFrame:
    """The rows the BATCH aggregates count: train and test rows ('score' rows never)."""
    return rows.where(F.col("split").isin("train", "test"))


def full_features(inputs: EncodedInputs, factors: SvdFactors, shape: Shape, held: Held) -> DataFrame:
    """The full profile's features frame (:func:`~relisten_spark.features.assemble.assemble`)."""
    base = event_rows(inputs)
    song_batch = checkpoint(popularity.song_counts_batch(inputs.song_t, _counted(base)))
    nn = held.persist(_with_nn_values(base, inputs.song_t, song_batch))
    basis = F.col("_basis")
    user_batch = popularity.user_counts_batch(_counted(base)).join(
        member_add_batch(nn, basis), "_user", "full"
    )
    nn_only = [c for c in MEMBER_ADD_VALUES.values() if c != "_nn_yy"]
    rows = add_timestamp(
        nn.drop("song_length", "yy", *nn_only), inputs.n_train, inputs.n_train + inputs.n_test
    )
    # one sort per key on the narrow frame; song-keyed last so that the SVD dot join below finds
    # the rows already partitioned by song
    song_batch = checkpoint(song_batch.join(_song_time_stats(rows), "_song", "left"))
    shares = user_source_shares(_counted(inputs.ev), SOURCE_SHARE_CODES)
    user_batch = checkpoint(user_batch.join(shares.withColumnRenamed("msno", "_user"), "_user", "left"))
    rows = _per_row(rows, shape, basis, factors)
    users = user_table(inputs.member_t, factors, user_batch)
    return assemble(rows, users, song_table(inputs.song_t, factors, song_batch), shape, "full")


def _with_nn_values(base: DataFrame, song_t: DataFrame, song_batch: DataFrame) -> DataFrame:
    """``base`` + the member_add NN values (fill: song means of the song table and its BATCH
    counts) + ``_basis`` (the TP+T basis)."""
    per_song = song_t.select("_song", "song_length", "yy").join(song_batch, "_song")
    batch_counts = song_batch.select(F.col("_song").alias("_s"), *NN_COUNTS)
    with_counts = base.join(F.broadcast(batch_counts), base["song_id"] == F.col("_s"), "left").drop("_s")
    nn = add_nn_values(with_counts, fit_nn_fill(per_song)).drop(*NN_COUNTS)
    return nn.withColumn("_basis", tp_basis(nn))


def _song_time_stats(rows: DataFrame) -> DataFrame:
    """``[_song, song_timestamp_mean, song_timestamp_std]`` over all rows of each song: the
    full profile's per-song values, joined for the song and its previous and next song."""
    return rows.groupBy(F.col("song_id").alias("_song")).agg(*time_stats("song"))


def _per_row(rows: DataFrame, shape: Shape, basis: Column, factors: SvdFactors) -> DataFrame:
    """The window and share families of each row (the shares from aggregate tables of the
    join-free ``rows``), then the SVD dots."""
    share_base = rows
    rows = add_sequence_features(rows, list(shape.windows), include_after=True, serving=False)
    # the song's own time statistics come from the song table as its neighbours' do; dropping the
    # per-row copies prunes their window expressions from the plan
    rows = rows.drop(*SONG_TIME_STATS)
    rows = add_source_probs(rows, serving=False, counted=share_base)
    rows = add_user_shares(rows, serving=False, basis=basis, counted=share_base)
    rows = add_song_source_probs(rows, serving=False, basis=basis, counted=share_base)
    return add_svd_dots(rows, factors)
