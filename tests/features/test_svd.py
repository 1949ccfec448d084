"""Distributed randomized SVD (FEATURES.md step 4) against scipy / numpy, and the dot features."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.sql import functions as F
from reference_seq import ARTIST_OF_SONG, events_pandas, events_spark
from scipy import sparse
from scipy.sparse.linalg import svds

from relisten_spark.features.embeddings import add_svd_dots, fit_svd_factors
from relisten_spark.features.svd import randomized_svd

pytestmark = pytest.mark.spark


def _dense(frame, n: int, k: int) -> np.ndarray:
    out = np.zeros((n, k))
    for row in frame.collect():
        out[row["id"]] = row["vec"]
    return out


def test_singular_values_and_reconstruction_match_scipy(spark) -> None:
    # a random sparse 0/1 matrix with 4 planted user/song groups: a clear gap after s_4, so the
    # rank-4 reconstruction is well defined
    rng = np.random.default_rng(3)
    same_group = (np.arange(40)[:, None] % 4) == (np.arange(70)[None, :] % 4)
    a = sparse.coo_matrix((rng.random((40, 70)) < np.where(same_group, 0.5, 0.04)).astype(float))
    k = 4
    entries = spark.createDataFrame(
        [(int(r), int(c), float(v)) for r, c, v in zip(a.row, a.col, a.data, strict=True)],
        "row int, col int, value double",
    )
    svd = randomized_svd(entries, k, oversample=34, power_iters=4, seed=11, buckets=3)
    u_ref, s_ref, vt_ref = svds(a.tocsc(), k=k)
    order = np.argsort(s_ref)[::-1]
    u_ref, s_ref, vt_ref = u_ref[:, order], s_ref[order], vt_ref[order]
    s = np.array(svd.values)
    assert np.all(np.abs(s - s_ref) / s_ref < 1e-3)
    assert list(s) == sorted(s, reverse=True)
    u, v = _dense(svd.rows, a.shape[0], k), _dense(svd.cols, a.shape[1], k)
    np.testing.assert_allclose(u.T @ u, np.eye(k), atol=1e-8)  # unit-norm, not scaled by s
    np.testing.assert_allclose(v.T @ v, np.eye(k), atol=1e-8)
    pairs = [(0, 0), (3, 5), (17, 33), (a.row[0], a.col[0]), (a.row[-1], a.col[-1])]
    for i, j in pairs:
        expected = float(np.sum(u_ref[i] * s_ref * vt_ref[:, j]))  # sign-invariant
        assert float(np.sum(u[i] * s * v[j])) == pytest.approx(expected, abs=1e-6)
    assert np.all(u.sum(axis=0) >= 0)  # the sign convention
    # the driver path (small matrices) gives the same factors, signs included
    local = randomized_svd(entries, k, oversample=34, power_iters=4, seed=11, buckets=3, local_max_nnz=10**6)
    assert local.values == pytest.approx(svd.values, rel=1e-9)
    np.testing.assert_allclose(_dense(local.rows, a.shape[0], k), u, atol=1e-7)
    np.testing.assert_allclose(_dense(local.cols, a.shape[1], k), v, atol=1e-7)
    svd.unpersist()


def _user_song(df) -> np.ndarray:
    m = np.zeros((df["msno"].max() + 1, df["song_id"].max() + 1))
    m[df["msno"], df["song_id"]] = 1.0
    return m


def _user_artist(df) -> np.ndarray:
    known = df[df["artist_name"] > 0]
    counts = known.groupby(["msno", "artist_name"]).size()
    m = np.zeros((df["msno"].max() + 1, max(ARTIST_OF_SONG.values()) + 1))
    for (user, artist), c in counts.items():
        m[user, artist] = 0.3 * np.log1p(c) + 1.0
    return m


def _rank_k(m: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    u, s, vt = np.linalg.svd(m)
    return (u[:, :k] * s[:k]) @ vt[:k], s[:k]


def _song_artist(spark):
    rows = [(song, artist) for song, artist in ARTIST_OF_SONG.items() if artist > 0]
    return spark.createDataFrame(rows, "song_id int, artist_name int")


def test_factors_and_dots_full_profile(spark) -> None:
    """5 users x 6 songs, 5 users x 3 artists (factorised transposed), distributed path forced:
    k + oversample covers the rank, so the result is exact; compared with numpy's full SVD."""
    ev, df = events_spark(spark), events_pandas()
    factors = fit_svd_factors(
        spark, ev, _song_artist(spark), None, 2, 2, oversample=4, power_iters=1, seed=5, local_max_nnz=0
    )
    song_rec, song_s = _rank_k(_user_song(df), 2)
    artist_rec, artist_s = _rank_k(_user_artist(df), 2)
    assert factors.song_values == pytest.approx(tuple(song_s), rel=1e-9)
    assert factors.artist_values == pytest.approx(tuple(artist_s), rel=1e-9)
    assert factors.member.columns == ["msno", "member_component_0", "member_component_1"]
    assert dict(factors.song.dtypes)["song_component_1"] == "float"
    assert factors.song.count() == 6
    assert sorted(r.artist_name for r in factors.artist.collect()) == [1, 2, 3]
    assert factors.member_artist.count() == 5

    out = add_svd_dots(ev, factors).toPandas().set_index("idx")
    assert out.columns.tolist()[-2:] == ["song_embeddings_dot", "artist_embeddings_dot"]
    for idx, row in out.iterrows():
        # float32 factors: agreement to ~1e-6 of the entries' scale
        assert row["song_embeddings_dot"] == pytest.approx(song_rec[row["msno"], row["song_id"]], abs=2e-6)
        if row["artist_name"] == 0:
            assert np.isnan(row["artist_embeddings_dot"]), idx  # song 4 has no artist
        else:
            expected = artist_rec[row["msno"], row["artist_name"]]
            assert row["artist_embeddings_dot"] == pytest.approx(expected, abs=2e-6)
    values = {(r.matrix, r.component): r.value for r in factors.values_frame(spark).collect()}
    assert values[("user_song", 0)] == pytest.approx(song_s[0])
    assert len(values) == 4
    factors.unpersist()


def test_serving_fit_rows_only_and_zero_vectors(spark) -> None:
    """Driver path (the default for small matrices)."""
    ev, df = events_spark(spark), events_pandas()
    fit = (F.col("split") == "train") & (F.col("idx") < 12)
    factors = fit_svd_factors(spark, ev, _song_artist(spark), fit, 2, 1, oversample=4, power_iters=0, seed=5)
    fit_df = df[(df["split"] == "train") & (df["idx"] < 12)]
    m = np.zeros((5, 6))
    m[fit_df["msno"], fit_df["song_id"]] = 1.0
    rec, s = _rank_k(m, 2)
    assert factors.song_values == pytest.approx(tuple(s), rel=1e-9)
    member = factors.member.toPandas().set_index("msno")
    assert member.loc[4].tolist() == [0.0, 0.0]  # user 4 has no fit rows
    song = factors.song.toPandas().set_index("song_id")
    assert song.loc[5].tolist() == [0.0, 0.0]  # song 5 has no fit rows
    out = add_svd_dots(ev, factors).toPandas().set_index("idx")
    assert out.at[20, "song_embeddings_dot"] == 0.0
    assert out.at[16, "song_embeddings_dot"] == 0.0
    assert out.at[23, "song_embeddings_dot"] == pytest.approx(rec[0, 1], abs=2e-6)  # later row, fit factors
    assert out.at[22, "artist_embeddings_dot"] == 0.0  # known artist, user without fit rows
    factors.unpersist()
