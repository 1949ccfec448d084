"""The popularity penalty and the MMR re-rank: planted lists, the plain top-N without levers, the
levers inside the ranking task and in the config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_rank import RULES, candidate_frame, register_models, train_booster

from relisten_spark.config import load_config
from relisten_spark.errors import InputError
from relisten_spark.scoring import rank
from relisten_spark.scoring.levers import GENRE, POPULARITY, Levers, greedy_positions, svd_columns
from relisten_spark.scoring.score import surface_rules


def _frame(rows: list[tuple], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["msno", "song_id", "artist_key", "score", *columns])


def _songs(frame: pd.DataFrame, kept: pd.DataFrame) -> list[str]:
    return frame.iloc[kept["pos"].to_numpy()]["song_id"].tolist()


def test_without_levers_the_greedy_pick_is_the_plain_top_n() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        [
            (f"u{u}", f"s{c:02d}", f"a{rng.integers(3)}", float(rng.integers(0, 5)) / 4)
            for u in range(7)
            for c in range(int(rng.integers(1, 12)))
        ],
        columns=["msno", "song_id", "artist_key", "score"],
    ).sample(frac=1.0, random_state=1)
    assert frame["score"].duplicated().any()  # ties: the song_id tie-break is exercised
    for cap in (None, 1, 2):
        plain = rank.top_n_positions(frame.assign(surface="x"), {"x": rank.SurfaceRule(5, cap)})
        greedy = greedy_positions(frame, 5, cap, Levers())
        pd.testing.assert_frame_equal(greedy, plain)


def test_popularity_penalty_lets_a_less_played_song_overtake() -> None:
    # s1 scores a little higher but was played e^4 - 1 times; s2 e^1 - 1 times
    frame = _frame([("u", "s1", "a", 0.60, 4.0), ("u", "s2", "b", 0.55, 1.0)], [POPULARITY])
    assert _songs(frame, greedy_positions(frame, 2, None, Levers())) == ["s1", "s2"]
    # 0.60 - 0.02 * 4 = 0.52 < 0.55 - 0.02 * 1 = 0.53
    assert _songs(frame, greedy_positions(frame, 2, None, Levers(popularity_penalty=0.02))) == ["s2", "s1"]
    # 0.01: 0.56 > 0.54, the order stays
    assert _songs(frame, greedy_positions(frame, 2, None, Levers(popularity_penalty=0.01))) == ["s1", "s2"]


def test_mmr_over_genres_moves_another_genre_up() -> None:
    frame = _frame(
        [
            ("u", "s1", "a", 0.90, 7),
            ("u", "s2", "b", 0.85, 7),
            ("u", "s3", "c", 0.80, 3),
            ("v", "t1", "a", 0.5, 1),
        ],
        [GENRE],
    )
    plain = greedy_positions(frame, 2, None, Levers(mmr_weight=0.0))
    assert _songs(frame, plain) == ["s1", "s2", "t1"]
    # step 2: s2 = 0.7 * 0.85 - 0.3 * 1 = 0.295 < s3 = 0.7 * 0.80 - 0 = 0.56
    kept = greedy_positions(frame, 2, None, Levers(mmr_weight=0.3, mmr_similarity="genre"))
    assert _songs(frame, kept) == ["s1", "s3", "t1"]
    assert kept["rank"].tolist() == [1, 2, 1]
    # a weight too small to pay for the score gap: 0.95 * 0.05 = 0.0475 < 0.05 * 1
    kept = greedy_positions(frame, 2, None, Levers(mmr_weight=0.05, mmr_similarity="genre"))
    assert _songs(frame, kept) == ["s1", "s3", "t1"]
    kept = greedy_positions(frame, 2, None, Levers(mmr_weight=0.01, mmr_similarity="genre"))
    assert _songs(frame, kept) == ["s1", "s2", "t1"]


def test_mmr_over_svd_factors_and_artists_with_the_cap() -> None:
    vectors = {"s1": [1.0, 0.0], "s2": [0.9, 0.1], "s3": [0.0, 1.0]}
    rows = [
        ("u", s, "a" if s != "s3" else "b", score) for s, score in (("s1", 0.9), ("s2", 0.88), ("s3", 0.7))
    ]
    svd = svd_columns(3)  # a third, empty component
    frame = _frame([(*r, *vectors[r[1]], 0.0) for r in rows], list(svd))
    kept = greedy_positions(frame, 3, None, Levers(mmr_weight=0.3, mmr_similarity="svd", svd_k=3))
    assert _songs(frame, kept) == ["s1", "s3", "s2"]  # s2 is nearly s1
    kept = greedy_positions(frame, 3, 1, Levers(mmr_weight=0.3, mmr_similarity="artist"))
    assert _songs(frame, kept) == ["s1", "s3"]  # the cap still holds: one song of artist a


def test_top_n_positions_applies_each_surfaces_levers() -> None:
    rng = np.random.default_rng(5)
    frame = candidate_frame(users=4, per_user=9).assign(
        score=rng.random(72), **{POPULARITY: rng.random(72) * 5}
    )
    levers = Levers(popularity_penalty=0.1)
    rules = {**RULES, "story": rank.SurfaceRule(4, 2, levers)}
    kept = rank.top_n_positions(frame, rules)
    got = frame.iloc[kept["pos"].to_numpy()].assign(rank=kept["rank"].to_numpy())
    plain = rank.top_n_positions(frame, RULES)
    want_plain = frame.iloc[plain["pos"].to_numpy()]
    shopping = got[got["surface"] == "shopping"]
    assert shopping["song_id"].tolist() == want_plain[want_plain["surface"] == "shopping"]["song_id"].tolist()
    story = frame[frame["surface"] == "story"].reset_index(drop=True)
    tuned = greedy_positions(story, 4, 2, levers)
    assert got[got["surface"] == "story"]["song_id"].tolist() == _songs(story, tuned)
    assert got[["surface", "msno", "rank"]].equals(
        got[["surface", "msno", "rank"]].sort_values(["surface", "msno", "rank"])
    )
    assert (
        got[got["surface"] == "story"]["song_id"].tolist()
        != want_plain[want_plain["surface"] == "story"]["song_id"].tolist()
    )


def test_levers_come_from_the_surface_config() -> None:
    cfg = load_config(
        None,
        ["scoring.surfaces.story.popularity_penalty=0.05", "scoring.surfaces.story.mmr_weight=0.2"],
    )
    rules = surface_rules(cfg)
    assert rules["story"].levers == Levers(0.05, 0.2, "genre")
    assert not rules["shopping"].levers.active
    assert rank.lever_columns(rules) == [POPULARITY, GENRE]
    assert rules["story"].levers.label() == "pop0.05+mmr-genre0.2"
    assert Levers().label() == "base"


@pytest.mark.spark
def test_score_and_rank_reads_the_lever_columns(spark, tmp_lake) -> None:
    register_models(Path(tmp_lake.models.root), train_booster())
    ens = rank.load_ensemble(tmp_lake.models.root, "serving")
    rng = np.random.default_rng(2)
    frame = candidate_frame(users=3).assign(**{POPULARITY: rng.random(54) * 6})
    rules = {**RULES, "story": rank.SurfaceRule(4, 2, Levers(popularity_penalty=0.3))}
    with pytest.raises(InputError, match="levers need"):
        rank.score_and_rank(spark.createDataFrame(frame.drop(columns=[POPULARITY])), ens, rules, 100)
    ranked = rank.score_and_rank(rank.cluster_by_user(spark.createDataFrame(frame)), ens, rules, 100)
    got = ranked.where("surface = 'story'").toPandas().sort_values(["msno", "rank"])
    scored = rank.score_pairs(spark.createDataFrame(frame), ens, [*rank.KEYS, POPULARITY]).toPandas()
    story = scored[scored["surface"] == "story"].reset_index(drop=True)
    want = story.iloc[greedy_positions(story, 4, 2, Levers(popularity_penalty=0.3))["pos"].to_numpy()]
    assert got["song_id"].tolist() == want["song_id"].tolist()
    np.testing.assert_allclose(got["score"].to_numpy(), want["score"].to_numpy())
