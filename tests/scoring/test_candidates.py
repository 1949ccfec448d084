"""Nearest songs in the SVD space against a brute-force numpy top-k; popular songs."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from relisten_spark.errors import InputError
from relisten_spark.scoring.candidates import block_top_k, nearest_songs, popular_songs

pytestmark = pytest.mark.spark

DIM = 4


def _factors(spark, prefix: str, key: str, ids: list[str], values: np.ndarray):
    schema = T.StructType(
        [T.StructField(key, T.StringType())]
        + [T.StructField(f"{prefix}_{j}", T.FloatType()) for j in range(DIM)]
    )
    rows = [(i, *map(float, v)) for i, v in zip(ids, values, strict=True)]
    return spark.createDataFrame(rows, schema)


def _brute_force(users: np.ndarray, songs: np.ndarray, s: np.ndarray, k: int) -> dict[int, list[int]]:
    scores = (users.astype(np.float64) * s) @ songs.astype(np.float64).T
    return {u: list(np.lexsort((np.arange(songs.shape[0]), -scores[u]))[:k]) for u in range(users.shape[0])}


def test_block_top_k_matches_a_full_sort() -> None:
    rng = np.random.default_rng(3)
    users = rng.normal(size=(7, DIM)).astype(np.float32)
    songs = rng.normal(size=(53, DIM)).astype(np.float32)
    pos, val = block_top_k(users, songs, k=6, block_size=8)
    want = _brute_force(users, songs, np.ones(DIM), 6)
    assert pos.tolist() == [want[u] for u in range(7)]
    assert np.all(np.diff(val, axis=1) <= 0)


def test_block_top_k_breaks_ties_by_song_position() -> None:
    users = np.ones((1, 2), dtype=np.float32)
    songs = np.array([[1, 0], [0, 2], [1, 0], [0, 0.5], [1, 0]], dtype=np.float32)
    pos, _ = block_top_k(users, songs, k=4, block_size=2)
    assert pos.tolist() == [[1, 0, 2, 4]]


@pytest.mark.parametrize(("block_size", "shard_size"), [(3, 1000), (4, 11)])
def test_nearest_songs_equal_brute_force(spark, block_size: int, shard_size: int) -> None:
    """One shard (ranked in the task) and several shards (merged per user) give the same top-k."""
    rng = np.random.default_rng(11)
    n_users, n_songs, k = 9, 40, 5
    users = rng.normal(size=(n_users, DIM)).astype(np.float32)
    songs = rng.normal(size=(n_songs, DIM)).astype(np.float32)
    s = np.array([4.0, 2.5, 1.5, 0.5])
    user_ids = [f"u{i:02d}" for i in range(n_users)]
    song_ids = [f"s{j:03d}" for j in range(n_songs)]
    members = _factors(spark, "member_component", "msno", user_ids, users)
    song_df = _factors(spark, "song_component", "song_id", song_ids, songs)

    got = nearest_songs(members, song_df, list(s), k=k, block_size=block_size, shard_size=shard_size)

    want = _brute_force(users, songs, s, k)
    full = (users.astype(np.float64) * s) @ songs.astype(np.float64).T
    expected = spark.createDataFrame(
        [
            (user_ids[u], song_ids[j], float(full[u, j]), rank + 1)
            for u in range(n_users)
            for rank, j in enumerate(want[u])
        ],
        "msno string, song_id string, factor_score double, factor_rank int",
    )
    assertDataFrameEqual(got, expected, rtol=1e-5)


def test_nearest_songs_rejects_mismatched_tables(spark) -> None:
    members = _factors(spark, "member_component", "msno", ["u"], np.ones((1, DIM)))
    songs = _factors(spark, "song_component", "song_id", ["s"], np.ones((1, DIM)))
    with pytest.raises(InputError, match="1 singular values"):
        nearest_songs(members, songs, [1.0], k=1, block_size=2, shard_size=2)


def test_popular_songs_rank_by_plays_then_id_within_catalog(spark) -> None:
    plays = spark.createDataFrame(
        [("a", 5), ("b", 9), ("c", 5), ("d", 7), ("e", 1)], "song_id string, plays long"
    )
    catalog = spark.createDataFrame([("a",), ("c",), ("d",), ("e",)], "song_id string")
    expected = spark.createDataFrame([("d", 1), ("a", 2), ("c", 3)], "song_id string, pop_rank int")
    assertDataFrameEqual(popular_songs(plays, catalog, 3), expected)
