"""Candidate generation: every user's nearest songs in the SVD factor space, plus popular songs.

The score of a (user, song) pair is the rank-k reconstruction of the binary user x song matrix,
``sum_j U[u, j] * s_j * V[song, j]`` (the ``song_embeddings_dot`` of FEATURES.md step 4), read
from the factor tables ``silver/svd_member``, ``silver/svd_song`` and ``silver/svd_values``.

All users against all songs is a dense product (34,403 x 419,839 x 48 at full scale), done like
Spark ALS's ``recommendForAll``: users are packed into blocks of about ``block_size`` rows and
songs into shards of about ``shard_size`` rows, each block and shard one row holding its ids and
a float32 factor matrix. The cross join of user blocks with song shards runs in Python tasks
(``mapInArrow``); each task multiplies its user block with its shard ``block_size`` songs at a
time and keeps a running top-k per user (:func:`relisten_spark.retrieval.nearest.block_top_k`, a
torch product per step), so a task never holds more than a ``block_size x block_size`` score
matrix. With one shard (the default up to 500,000 songs) the task's ranking is final; with
several, the per-shard top-k lists are merged per user with a window ranking. Nothing is
excluded here: the surfaces filter the candidates later, which is why callers ask for
``scoring.candidates + scoring.candidate_margin`` songs.

Tie-break: equal scores rank by ``song_id`` ascending (songs are sorted by id inside a shard);
of several songs tied exactly at the k-th score, those of the larger factor norm, then the lower
``song_id``, make the cut (:func:`~relisten_spark.retrieval.nearest.block_top_k`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from relisten_spark.errors import InputError
from relisten_spark.retrieval.baselines import factor_columns
from relisten_spark.retrieval.nearest import block_top_k

BLOCK_SCHEMA = "block int, ids array<string>, factors binary"
NEAREST_SCHEMA = "msno string, song_id string, factor_score double, factor_rank int"


def pack_blocks(
    df: DataFrame, id_col: str, cols: Sequence[str], rows_per_block: int
) -> tuple[DataFrame, int]:
    """Pack ``[id_col, *cols]`` rows into blocks of about ``rows_per_block`` rows.

    Returns (``[block int, ids array<string>, factors binary]``, the number of blocks): one row
    per non-empty block, its ids sorted ascending and ``factors`` the row-major float32 matrix
    ``len(ids) x len(cols)`` in that order. Rows go to blocks by a hash of the id (no global
    ordering); rows with a null factor are dropped.
    """
    n = df.count()
    blocks = max(1, math.ceil(n / rows_per_block))
    names = list(cols)
    clean = df.select(
        F.col(id_col).cast("string").alias("_id"), *[F.col(c).cast("float") for c in names]
    ).dropna()
    with_block = clean.withColumn("_block", F.pmod(F.xxhash64("_id"), F.lit(blocks)).cast("int"))

    def pack(pdf: pd.DataFrame) -> pd.DataFrame:
        pdf = pdf.sort_values("_id", kind="stable")
        matrix = np.ascontiguousarray(pdf[names].to_numpy(dtype=np.float32))
        return pd.DataFrame(
            {
                "block": [int(pdf["_block"].iloc[0])],
                "ids": [pdf["_id"].tolist()],
                "factors": [matrix.tobytes()],
            }
        )

    return with_block.groupBy("_block").applyInPandas(pack, BLOCK_SCHEMA), blocks


_NEAREST_ARROW = pa.schema(
    [
        ("msno", pa.string()),
        ("song_id", pa.string()),
        ("factor_score", pa.float64()),
        ("factor_rank", pa.int32()),
    ]
)


def _nearest_fn(
    k: int, block_size: int, dim: int, scale: np.ndarray
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The task side of :func:`nearest_songs`: one (user block, song shard) row at a time."""

    def nearest(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for i in range(batch.num_rows):
                user_buf = batch.column("user_factors")[i].as_buffer()
                song_buf = batch.column("song_factors")[i].as_buffer()
                users = np.frombuffer(user_buf, dtype=np.float32).reshape(-1, dim) * scale
                songs = np.frombuffer(song_buf, dtype=np.float32).reshape(-1, dim)
                pos, val = block_top_k(users, songs, k, block_size)
                width = pos.shape[1]
                if width == 0 or users.shape[0] == 0:
                    continue
                user_ids = batch.column("user_ids")[i].values
                song_ids = batch.column("song_ids")[i].values
                yield pa.RecordBatch.from_arrays(
                    [
                        user_ids.take(pa.array(np.repeat(np.arange(users.shape[0]), width))),
                        song_ids.take(pa.array(pos.ravel())),
                        pa.array(val.ravel().astype(np.float64)),
                        pa.array(np.tile(np.arange(1, width + 1, dtype=np.int32), users.shape[0])),
                    ],
                    schema=_NEAREST_ARROW,
                )

    return nearest


def nearest_songs(
    members: DataFrame,
    songs: DataFrame,
    singular_values: Sequence[float],
    k: int,
    block_size: int,
    shard_size: int,
) -> DataFrame:
    """Each user's ``k`` nearest songs by ``U diag(s) V^T``.

    ``members``: ``[msno, member_component_0..d-1]``; ``songs``: ``[song_id, song_component_0..d-1]``;
    ``singular_values``: the ``d`` values of the user x song SVD, component order.
    Returns ``[msno, song_id, factor_score double, factor_rank int]`` with ranks ``1..min(k, songs)``
    per user (score descending, song_id ascending).
    """
    user_cols = factor_columns(members, "member_component")
    song_cols = factor_columns(songs, "song_component")
    dim = len(user_cols)
    if len(song_cols) != dim or len(singular_values) != dim:
        raise InputError(
            f"SVD tables disagree: {dim} member components, {len(song_cols)} song components, "
            f"{len(singular_values)} singular values"
        )
    user_blocks, blocks = pack_blocks(members, "msno", user_cols, block_size)
    song_shards, shards = pack_blocks(songs, "song_id", song_cols, shard_size)
    users = user_blocks.select(
        F.col("block").alias("user_block"),
        F.col("ids").alias("user_ids"),
        F.col("factors").alias("user_factors"),
    )
    songs_packed = song_shards.select(
        F.col("block").alias("song_block"),
        F.col("ids").alias("song_ids"),
        F.col("factors").alias("song_factors"),
    )
    pairs = users.crossJoin(songs_packed)
    # one (block, shard) pair per task where the hash allows: a pair row carries a whole shard
    pairs = pairs.repartition(max(1, blocks * shards), "user_block", "song_block")
    scale = np.asarray(singular_values, dtype=np.float32)
    nearest = pairs.mapInArrow(_nearest_fn(k, block_size, dim, scale), NEAREST_SCHEMA)
    if shards <= 1:
        return nearest
    by_user = Window.partitionBy("msno").orderBy(F.desc("factor_score"), F.asc("song_id"))
    return (
        nearest.withColumn("factor_rank", F.row_number().over(by_user))
        .where(F.col("factor_rank") <= k)
        .select("msno", "song_id", "factor_score", "factor_rank")
    )


def song_plays(events: DataFrame) -> DataFrame:
    """``[song_id, plays long]``: events per song over the whole log (train and test rows)."""
    return events.where(F.col("song_id").isNotNull()).groupBy("song_id").agg(F.count("*").alias("plays"))


def popular_songs(plays: DataFrame, catalog: DataFrame, m: int) -> DataFrame:
    """The ``m`` most played songs of ``catalog`` ``[song_id, ...]``.

    ``plays``: ``[song_id, plays]``. Returns ``[song_id, pop_rank int]`` with ranks ``1..m``
    (plays descending, song_id ascending). Only ``m`` rows reach the final ranking window.
    """
    top = plays.join(catalog.select("song_id"), "song_id").orderBy(F.desc("plays"), F.asc("song_id")).limit(m)
    order = Window.orderBy(F.desc("plays"), F.asc("song_id"))
    return top.select("song_id", F.row_number().over(order).cast("int").alias("pop_rank"))
