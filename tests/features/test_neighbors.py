"""Previous / next event features (FEATURES.md step 6) against the pandas reference."""

from __future__ import annotations

import math

import pytest
from pyspark.sql import functions as F
from reference_seq import (
    N_TOTAL,
    N_TRAIN,
    assert_frame_matches,
    events_pandas,
    events_spark,
    neighbors,
    timestamp,
    with_timestamp,
)

from relisten_spark.errors import InputError
from relisten_spark.features.neighbors import add_neighbors, fit_timestamp_fill
from relisten_spark.features.timeline import add_timestamp

pytestmark = pytest.mark.spark

COPIED = ["song_id", "source_type", "source_screen_name", "timestamp"]
BEFORE = [f"before_{c}" for c in COPIED]
AFTER = [f"after_{c}" for c in COPIED]
TRAIN_STEP = 869_760.0  # seconds between two train rows (16 train rows over 13,046,400 s)


def _events(spark, tied: bool = False):
    return add_timestamp(events_spark(spark, tied), N_TRAIN, N_TOTAL)


def test_full_profile_matches_reference(spark) -> None:
    out = add_neighbors(_events(spark), include_after=True).toPandas()
    expected = neighbors(with_timestamp(events_pandas()), include_after=True, fill=None)
    assert_frame_matches(out, expected, BEFORE + AFTER)
    row = out.set_index("idx")
    # idx 9 (user 0): previous is idx 6 (song 2, screen 2, type 3), next is idx 12 (song 3, 5, 3)
    assert (row.at[9, "before_song_id"], row.at[9, "before_source_screen_name"]) == (2, 2)
    assert row.at[9, "before_timestamp"] == pytest.approx(math.log1p(3 * TRAIN_STEP))
    assert (row.at[9, "after_song_id"], row.at[9, "after_source_screen_name"]) == (3, 5)
    assert row.at[9, "after_timestamp"] == pytest.approx(math.log1p(3 * TRAIN_STEP))
    # user 3's single event: own values both ways, deltas filled with the train-split means
    assert (row.at[7, "before_song_id"], row.at[7, "after_song_id"]) == (4, 4)
    assert (row.at[7, "before_source_type"], row.at[7, "after_source_type"]) == (1, 1)
    train = out[out["split"] == "train"]
    firsts = [0, 1, 3, 7]  # first train events of users 0, 1, 2, 3
    gaps = [math.log1p(timestamp(i) - timestamp(p)) for i, p in _previous_pairs(train, firsts)]
    assert row.at[7, "before_timestamp"] == pytest.approx(sum(gaps) / len(gaps))
    # user 4 only in test: its first event takes the TEST-split mean
    test = expected[expected["split"] == "test"]
    assert row.at[20, "before_timestamp"] == pytest.approx(test["before_timestamp"].drop(index=20).mean())


def _previous_pairs(train, firsts):
    """(row, previous row of its user) for the train rows that have one (train rows only: the
    train-split mean covers train rows whatever split their neighbour is in)."""
    pairs = []
    for r in train.itertuples():
        if r.idx in firsts:
            continue
        earlier = train[(train["msno"] == r.msno) & (train["idx"] < r.idx)]["idx"].max()
        pairs.append((r.idx, int(earlier)))
    return pairs


def test_serving_with_constant_fill_and_ties(spark) -> None:
    ev = _events(spark, tied=True)
    fill = fit_timestamp_fill(ev, (F.col("split") == "train") & (F.col("idx") < 12))
    out = add_neighbors(ev, include_after=False, fill=fill).toPandas()
    expected = neighbors(with_timestamp(events_pandas(tied=True)), include_after=False, fill=fill)
    assert_frame_matches(out, expected, BEFORE)
    assert not any(c.startswith("after_") for c in out.columns)
    # fit rows idx < 12 with a previous event: 2 4 6 9 (user 0), 5 8 11 (user 1), 10 (user 2)
    gaps = [2, 2, 2, 3, 4, 3, 3, 7]
    expected_fill = sum(math.log1p(g * TRAIN_STEP) for g in gaps) / len(gaps)
    assert fill["before_timestamp"] == pytest.approx(expected_fill)
    # the two tied rows of user 0 both see idx 23 as their previous event, never each other
    tied = out[(out["idx"] == 24) & (out["msno"] == 0)]
    assert tied["before_song_id"].tolist() == [1, 1]
    new_user = out[(out["idx"] == 24) & (out["msno"] == 5)].iloc[0]
    assert new_user["before_song_id"] == 0  # its own song
    assert new_user["before_timestamp"] == pytest.approx(fill["before_timestamp"])


def test_fill_must_cover_every_delta(spark) -> None:
    with pytest.raises(InputError, match="after_timestamp"):
        add_neighbors(_events(spark), include_after=True, fill={"before_timestamp": 1.0})
