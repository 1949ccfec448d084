"""Beyond-accuracy measures on planted lists whose values are worked out by hand."""

from __future__ import annotations

import pytest

from relisten_spark import schemas
from relisten_spark.beyond_accuracy import MEASURES, list_measures, song_reference, surface_overlap

pytestmark = pytest.mark.spark

# the reference log: s1 played by all four users, s2 by two, s3, s4 and s5 by one each
LOG = [("u1", "s1"), ("u2", "s1"), ("u3", "s1"), ("u4", "s1"), ("u1", "s2"), ("u2", "s2")]
LOG += [("u3", "s3"), ("u4", "s4"), ("u4", "s5")]
SONGS = [  # song_id, genre_ids, artist_name
    ("s1", "1|2", "A"),
    ("s2", "1", "A"),
    ("s3", None, "B"),
    ("s4", "1", None),
    ("s5", "5", "C"),
]
LISTS = {
    ("x", "u1"): ["s1", "s3"],
    ("x", "u2"): ["s2", "s4"],
    ("x", "u3"): ["s1", "s2"],
    ("y", "u1"): ["s1", "s2"],
    ("y", "u2"): ["s5"],
}


def _frames(spark):
    events = spark.createDataFrame(
        [(i, u, s, "a", "b", "c", 1, "train") for i, (u, s) in enumerate(LOG)], schemas.EVENTS
    )
    songs = spark.createDataFrame([(s, 200_000, g, a, None, None, 3) for s, g, a in SONGS], schemas.SONGS)
    recs = spark.createDataFrame(
        [(surface, u, s, r + 1) for (surface, u), songs in LISTS.items() for r, s in enumerate(songs)],
        "surface string, msno string, song_id string, rank int",
    )
    return events, songs, recs


def test_list_measures_of_planted_lists(spark) -> None:
    events, songs, recs = _frames(spark)
    reference = song_reference(events, songs)
    got = {(r.surface, r.metric): r.value for r in list_measures(recs, reference, ["surface"]).collect()}
    x = {m: got[("x", m)] for m in MEASURES}
    want = {
        "catalog_coverage": 4 / 5,  # s5 is never shown on x
        "popularity_share": 2 / 6,  # the head (10 % of 5 songs -> 1 song) is s1: 2 of 6 rows
        "novelty": (0 + 2 + 1 + 2 + 0 + 1) / 6,  # -log2 of 4/4, 1/4, 2/4, 1/4, 4/4, 2/4 of the users
        "artist_diversity": (1 + 1 + 0) / 3,  # u1 A, B; u2 A, (s4 its own); u3 A, A
        "genre_diversity": (1 + 0 + 0) / 3,  # u1 1, (s3 its own); u2 1, 1; u3 1, 1
        "heard_share": 3 / 6,  # (u1, s1), (u2, s2), (u3, s1) are in the log
        "exposure_gini": 10 / 30,  # exposures 0, 1, 1, 2, 2: sum (2i - 6) x_i / (5 * 6)
        "lists": 3,
    }
    assert x == pytest.approx(want)
    assert got[("y", "artist_diversity")] == pytest.approx(0.0)  # u2's list of one row has none


def test_surface_overlap_is_the_mean_jaccard_of_users_with_both_lists(spark) -> None:
    _, _, recs = _frames(spark)
    got = {(r.surface, r.metric): r.value for r in surface_overlap(recs).collect()}
    # u1: {s1, s3} and {s1, s2} -> 1/3; u2: {s2, s4} and {s5} -> 0; u3 has no y list
    assert got == pytest.approx({("x", "overlap_y"): 1 / 6, ("y", "overlap_x"): 1 / 6})
    one = surface_overlap(recs.where("surface = 'x'"))
    assert one.count() == 0
    assert one.columns == ["surface", "metric", "value"]
