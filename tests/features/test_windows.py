"""Window counts and till-now counts (FEATURES.md step 5) against the pandas reference."""

from __future__ import annotations

import math

import pytest
from reference_seq import (
    N_TOTAL,
    N_TRAIN,
    assert_frame_matches,
    events_pandas,
    events_spark,
    till_now,
    window_counts,
)

from relisten_spark.errors import InputError
from relisten_spark.features.neighbors import add_neighbors
from relisten_spark.features.timeline import add_time_stats, add_timestamp
from relisten_spark.features.windows import add_sequence_features, add_till_now, add_window_counts

pytestmark = pytest.mark.spark

# Small windows so that the clipping at both ends and the exact bounds matter on 24 rows,
# plus one thesis window that covers everything.
WINDOWS = [1, 2, 3, 5, 10, 50000]


def _names(include_after: bool) -> list[str]:
    sides = ["before", "after"] if include_after else ["before"]
    return [f"{p}_{w}_{side}_cnt" for p in ("msno", "song") for side in sides for w in WINDOWS]


def test_window_counts_full_match_reference(spark) -> None:
    out = add_window_counts(events_spark(spark), WINDOWS, include_after=True).toPandas()
    expected = window_counts(events_pandas(), WINDOWS, include_after=True)
    assert_frame_matches(out, expected, _names(include_after=True))
    row = out.set_index("idx")
    # Hand-computed for idx 9 (user 0, song 0). User 0's rows: 0 2 4 6 9 12 14 16 19 23.
    # before w=5 -> rows 4..8: {4, 6}; after w=5 -> rows 9..13: {9, 12}; song 0: 0 4 9 10 15 18 19 22.
    assert row.at[9, "msno_5_before_cnt"] == pytest.approx(math.log(3))
    assert row.at[9, "msno_5_after_cnt"] == pytest.approx(math.log(3))
    assert row.at[9, "song_5_before_cnt"] == pytest.approx(math.log(2))
    assert row.at[9, "song_1_after_cnt"] == pytest.approx(math.log(2))  # only the row itself
    assert row.at[9, "msno_50000_before_cnt"] == pytest.approx(math.log(5))
    # user 3's single event: nothing before, only itself after
    assert row.at[7, "msno_50000_before_cnt"] == 0.0
    assert row.at[7, "msno_50000_after_cnt"] == pytest.approx(math.log(2))


def test_before_windows_skip_tied_rows(spark) -> None:
    out = add_window_counts(events_spark(spark, tied=True), WINDOWS, include_after=False).toPandas()
    expected = window_counts(events_pandas(tied=True), WINDOWS, include_after=False)
    assert_frame_matches(out, expected, _names(include_after=False))
    assert not any(c.endswith("_after_cnt") for c in out.columns)
    tied = out[(out["idx"] == 24) & (out["msno"] == 0)]
    assert tied["msno_1_before_cnt"].tolist() == pytest.approx([math.log(2)] * 2)  # idx 23 only


def test_window_counts_keep_input_columns_and_rows(spark) -> None:
    ev = events_spark(spark)
    out = add_window_counts(ev, [3], include_after=True)
    assert out.columns[: len(ev.columns)] == ev.columns
    assert out.count() == ev.count()


def test_window_counts_reject_bad_input(spark) -> None:
    with pytest.raises(InputError, match="positive"):
        add_window_counts(events_spark(spark), [0], include_after=False)
    with pytest.raises(InputError, match="song_id"):
        add_window_counts(events_spark(spark).drop("song_id"), [3], include_after=False)


def test_till_now_matches_reference_with_ties(spark) -> None:
    out = add_till_now(events_spark(spark, tied=True)).toPandas()
    expected = till_now(events_pandas(tied=True))
    assert_frame_matches(out, expected, ["msno_till_now_cnt", "song_till_now_cnt"])
    row = out[out["idx"] == 9].iloc[0]
    assert row["msno_till_now_cnt"] == pytest.approx(math.log(5))  # rows 0 2 4 6
    assert row["song_till_now_cnt"] == pytest.approx(math.log(3))  # rows 0 4
    tied = out[(out["idx"] == 24) & (out["msno"] == 0)]
    assert tied["msno_till_now_cnt"].tolist() == pytest.approx([math.log(11)] * 2)


@pytest.mark.parametrize("serving", [False, True])
def test_fused_sequence_features_equal_the_separate_functions(spark, serving) -> None:
    ev = add_timestamp(events_spark(spark, tied=serving), N_TRAIN, N_TOTAL)
    include_after = not serving
    fill = None if not serving else {"before_timestamp": 12.5}
    fused = add_sequence_features(ev, WINDOWS, include_after, serving, fill)
    separate = add_window_counts(add_neighbors(ev, include_after, fill), WINDOWS, include_after)
    separate = add_time_stats(add_till_now(separate), serving)
    assert sorted(fused.columns) == sorted(separate.columns)
    assert fused.columns[: len(ev.columns)] == ev.columns
    new = [c for c in separate.columns if c not in ev.columns]
    sides = 2 if include_after else 1
    assert len(new) == 4 * sides + 2 + 4 + 2 * len(WINDOWS) * sides  # neighbours, till-now, stats, windows
    assert_frame_matches(fused.toPandas(), separate.toPandas(), new)
    # user 3's single event: before_* are its own values, its delta the split (or fit) fill
    row = fused.where("idx = 7").first()
    assert row["before_song_id"] == 4
    assert row["msno_till_now_cnt"] == 0.0
