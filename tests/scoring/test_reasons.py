"""Readable reasons: every feature's family label, the family sums and their weights, and the
enriched recommendations (song name, artist, genres beside the ids)."""

from __future__ import annotations

from datetime import date

import lightgbm as lgb
import numpy as np
import pytest
from pyspark.sql import Row

from relisten_spark import schemas
from relisten_spark.features import labels
from relisten_spark.features.manifest import profile_specs
from relisten_spark.features.spec import Shape
from relisten_spark.scoring import attribution, enriched, rank

DAY = date(2026, 1, 1)
NAMES = [
    "member_component_0",  # taste_match
    "song_component_1",  # taste_match
    "artist_embeddings_dot",  # taste_match
    "msno_artist_name_prob",  # artist_affinity
    "song_10_before_cnt",  # recent_popularity
    "msno_first_genre_id_prob",  # genre_affinity
    "f_new",  # outside the catalogue: its own reason
]


@pytest.mark.parametrize("profile", ["full", "serving"])
def test_every_manifest_column_has_a_family_label(profile: str) -> None:
    """Every column of both profiles, at the default and at a small shape, maps to a known
    reason; all SVD factors and their dots fold into one."""
    for shape in (Shape(), Shape(windows=(7, 30), k_song=3, k_artist=2)):
        for spec in profile_specs(profile, shape):
            reason = labels.reason_of(spec.name)
            assert reason.code in labels.REASONS, spec.name
            assert reason.text == labels.REASONS[reason.code]
            assert labels.feature_label(spec.name) == reason.text
            if spec.family in ("svd_user", "svd_song", "svd_dot"):
                assert reason.code == "taste_match", spec.name
    assert labels.reason_of("msno_artist_name_prob").text == "you often play this artist"
    assert labels.reason_of("song_500_before_cnt").text == "popular in the last days"
    assert labels.reason_of("source_type").code == "context_fit"
    assert labels.reason_of("f_new") == labels.Reason("f_new", "f_new")


def test_family_reasons_sum_families_and_weigh_them() -> None:
    contrib = np.array(
        [
            [0.2, 0.1, 0.1, 0.3, -0.1, 0.0, 0.2],  # taste 0.4, artist 0.3, new 0.2, popular -0.1
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # nothing: weights 0, first-appearance order
        ]
    )
    got = attribution.family_reasons(contrib, NAMES, k=3).to_pylist()
    total = 0.4 + 0.3 + 0.1 + 0.0 + 0.2
    assert [r["code"] for r in got[0]] == ["taste_match", "artist_affinity", "f_new"]
    assert [r["text"] for r in got[0]] == [
        "listeners like you play it",
        "you often play this artist",
        "f_new",
    ]
    np.testing.assert_allclose([r["weight"] for r in got[0]], [0.4 / total, 0.3 / total, 0.2 / total])
    assert got[1] == [
        {"code": "taste_match", "text": "listeners like you play it", "weight": 0.0},
        {"code": "artist_affinity", "text": "you often play this artist", "weight": 0.0},
        {"code": "recent_popularity", "text": "popular in the last days", "weight": 0.0},
    ]
    assert attribution.family_reasons(contrib[:0], NAMES, k=3).to_pylist() == []


@pytest.mark.parametrize("use_paths", [True, False])
def test_reasons_of_a_booster_are_its_family_contributions(use_paths: bool) -> None:
    """rank.reasons = the booster's contributions (path or TreeSHAP) summed per family."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, len(NAMES)))
    y = (x[:, 0] + x[:, 1] + x[:, 3] - x[:, 4] + rng.normal(scale=0.5, size=300) > 0).astype(int)
    params = {"objective": "binary", "num_leaves": 5, "min_data_in_leaf": 10, "verbose": -1, "seed": 0}
    booster = lgb.train(params, lgb.Dataset(x, y, feature_name=NAMES), num_boost_round=10)
    paths = attribution.path_contributions(booster) if use_paths else None
    got = rank.reasons(booster, x[:8], NAMES, paths=paths).to_pylist()
    contrib = paths.of(booster, x[:8]) if paths else booster.predict(x[:8], pred_contrib=True)[:, :-1]
    groups = attribution.reason_groups(tuple(NAMES))
    sums = contrib @ groups.member
    for row, s in zip(got, sums, strict=True):
        top = np.argsort(-s, kind="stable")[:3]
        assert [r["code"] for r in row] == list(groups.codes[top])
        np.testing.assert_allclose([r["weight"] for r in row], s[top] / np.abs(s).sum())


@pytest.mark.spark
def test_enrich_puts_names_beside_the_ids(spark) -> None:
    reasons = [("taste_match", "listeners like you play it", 0.5), ("f_new", "f_new", 0.254)]
    recs = spark.createDataFrame(
        [(DAY, "u1", 1, "s1", 0.9, "v1", reasons), (DAY, "u1", 2, "s9", 0.8, "v1", [])],
        schemas.RECS,
    )
    songs = spark.createDataFrame([("s1", 200_000, "465|1609", "Ana Blue", None, None, 3)], schemas.SONGS)
    extra = spark.createDataFrame([("s1", "Night Drive", "TWA1")], schemas.SONG_EXTRA)
    got = enriched.enrich(recs, songs, extra)
    assert got.schema.simpleString() == schemas.RECS_ENRICHED.simpleString()
    rows = {r["song_id"]: r for r in got.collect()}
    assert rows["s1"]["song_name"] == "Night Drive"
    assert rows["s1"]["artist_name"] == "Ana Blue"
    assert rows["s1"]["genre_ids"] == ["465", "1609"]
    assert rows["s1"]["language"] == 3
    assert rows["s1"]["why"] == "listeners like you play it (50%); f_new (25%)"
    assert rows["s1"]["reasons"][0] == Row(code="taste_match", text="listeners like you play it", weight=0.5)
    assert rows["s9"]["song_name"] is None  # no metadata: nulls
    assert rows["s9"]["why"] == ""
