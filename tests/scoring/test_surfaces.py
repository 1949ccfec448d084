"""Surface catalogs, candidate pools with popular fallback, eligibility, scoring contexts."""

from __future__ import annotations

import pytest
from pyspark.testing import assertDataFrameEqual

from relisten_spark.config import ScoringConfig, SurfaceConfig
from relisten_spark.errors import ConfigError
from relisten_spark.scoring import surfaces

pytestmark = pytest.mark.spark

EVENTS = "idx long, msno string, song_id string, source_system_tab string, source_screen_name string, " \
    "source_type string, target int, split string"  # fmt: skip


def _events(spark, pairs: list[tuple[str, str]]):
    rows = [(i, m, s, "discover", "x", "y", 1, "train") for i, (m, s) in enumerate(pairs)]
    return spark.createDataFrame(rows, EVENTS)


def test_catalog_filter_keeps_lengths_in_bounds_and_unknown_artists_apart(spark) -> None:
    events = _events(spark, [("u1", "a"), ("u1", "b"), ("u2", "c"), ("u2", "d"), ("u2", "e")])
    songs = spark.createDataFrame(
        [("a", 20_000, "X"), ("b", 200_000, "X"), ("c", 310_000, "Y"), ("d", 100_000, None), ("z", 1, "Q")],
        "song_id string, song_length long, artist_name string",
    )
    catalog = surfaces.song_catalog(events, songs)
    story = SurfaceConfig(min_song_length_ms=30_000, max_song_length_ms=300_000)
    want = spark.createDataFrame([("b", "X"), ("d", "song:d")], "song_id string, artist_key string")
    assertDataFrameEqual(surfaces.surface_catalog(catalog, story), want)
    everything = surfaces.surface_catalog(catalog, SurfaceConfig())
    assert sorted(r.song_id for r in everything.collect()) == ["a", "b", "c", "d", "e"]  # e: no metadata


def test_candidate_pool_filters_excludes_heard_and_fills_with_popular(spark) -> None:
    users = spark.createDataFrame([("u1",), ("u2",), ("u3",), ("cold",)], "msno string")
    nearest = spark.createDataFrame(
        [
            ("u1", "s1", 1),
            ("u1", "s2", 2),
            ("u1", "s3", 3),
            ("u1", "s4", 4),
            ("u2", "s4", 1),
            ("u2", "s5", 2),
        ],
        "msno string, song_id string, factor_rank int",
    )
    plays = spark.createDataFrame(
        [("p1", 10), ("s1", 8), ("p2", 6), ("p3", 4), ("s2", 3), ("s3", 3), ("s4", 2), ("s5", 1)],
        "song_id string, plays long",
    )
    # u3 heard the three most played songs: the fill must look past them
    heard = spark.createDataFrame(
        [("u1", "s2"), ("u2", "p1"), ("u3", "p1"), ("u3", "s1"), ("u3", "p2")], "msno string, song_id string"
    )
    catalog = spark.createDataFrame(
        [(s, f"art_{s}") for s in ("s1", "s2", "s4", "s5", "p1", "p2", "p3")],
        "song_id string, artist_key string",
    )  # s3 is outside the surface's catalog
    pool = surfaces.candidate_pool(
        users, nearest, plays, heard, catalog, SurfaceConfig(exclude_heard=True), 3
    )
    want = spark.createDataFrame(
        [
            ("u1", "s1", "art_s1", "nearest", 1),
            ("u1", "s4", "art_s4", "nearest", 2),
            ("u1", "p1", "art_p1", "popular", 3),
            ("u2", "s4", "art_s4", "nearest", 1),
            ("u2", "s5", "art_s5", "nearest", 2),
            ("u2", "s1", "art_s1", "popular", 3),
            ("u3", "p3", "art_p3", "popular", 1),
            ("u3", "s2", "art_s2", "popular", 2),
            ("u3", "s4", "art_s4", "popular", 3),
            ("cold", "p1", "art_p1", "popular", 1),
            ("cold", "s1", "art_s1", "popular", 2),
            ("cold", "p2", "art_p2", "popular", 3),
        ],
        "msno string, song_id string, artist_key string, source string, cand_rank int",
    )
    assertDataFrameEqual(pool, want)

    keep_heard = surfaces.candidate_pool(
        users, nearest, plays, heard, catalog, SurfaceConfig(exclude_heard=False), 3
    )
    u1 = [r.song_id for r in keep_heard.where("msno = 'u1'").orderBy("cand_rank").collect()]
    assert u1 == ["s1", "s2", "s4"]


def test_eligible_counts_subtract_heard_songs_in_the_catalog(spark) -> None:
    users = spark.createDataFrame([("u1",), ("u2",)], "msno string")
    heard = spark.createDataFrame([("u1", "a"), ("u1", "x"), ("u2", "b")], "msno string, song_id string")
    catalog = spark.createDataFrame([("a", "A"), ("b", "B"), ("c", "C")], "song_id string, artist_key string")
    got = surfaces.eligible_counts(users, heard, catalog, SurfaceConfig(exclude_heard=True))
    assertDataFrameEqual(got, spark.createDataFrame([("u1", 2), ("u2", 2)], "msno string, eligible long"))
    got_all = surfaces.eligible_counts(users, heard, catalog, SurfaceConfig(exclude_heard=False))
    assertDataFrameEqual(got_all, spark.createDataFrame([("u1", 3), ("u2", 3)], "msno string, eligible long"))


def test_all_users_join_members_and_events(spark) -> None:
    events = _events(spark, [("u1", "a"), ("u3", "b")])
    members = spark.createDataFrame([("u1",), ("u2",)], "msno string")
    assert sorted(r.msno for r in surfaces.all_users(events, members).collect()) == ["u1", "u2", "u3"]


def test_check_surfaces_rejects_unfillable_configs() -> None:
    with pytest.raises(
        ConfigError, match=r"scoring.candidates \(5\) is smaller than scoring.surfaces.story.top_n \(20\)"
    ):
        surfaces.check_surfaces(ScoringConfig(candidates=5))
    bad = ScoringConfig(surfaces={"story": SurfaceConfig(min_song_length_ms=10, max_song_length_ms=5)})
    with pytest.raises(ConfigError, match="min_song_length_ms"):
        surfaces.check_surfaces(bad)
    surfaces.check_surfaces(ScoringConfig())
