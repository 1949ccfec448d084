"""Row time and per-entity time statistics (FEATURES.md step 5) against the pandas reference."""

from __future__ import annotations

import math

import pytest
from reference_seq import (
    N_TOTAL,
    N_TRAIN,
    T1,
    assert_frame_matches,
    events_pandas,
    events_spark,
    time_stats,
    timestamp,
    with_timestamp,
)

from relisten_spark.errors import InputError
from relisten_spark.features.timeline import add_time_stats, add_timestamp

pytestmark = pytest.mark.spark

STATS = ["msno_timestamp_mean", "msno_timestamp_std", "song_timestamp_mean", "song_timestamp_std"]


def test_timestamp_matches_the_piecewise_map(spark) -> None:
    out = add_timestamp(events_spark(spark, tied=True), N_TRAIN, N_TOTAL).toPandas()
    expected = {i: timestamp(i) for i in range(25)}
    assert {int(r.idx): r.timestamp for r in out.itertuples()} == pytest.approx(expected, rel=1e-15)
    by_idx = dict(zip(out["idx"], out["timestamp"], strict=False))
    # Hand-computed: train spans 2016-08-15..2017-01-13 over idx 0..15, test 2017-01-13..02-28
    # over 8 rows (496,800 s each); the appended idx 24 extrapolates one more test step.
    assert by_idx[0] == 1_471_190_400.0
    assert by_idx[15] == pytest.approx(T1)
    assert by_idx[9] == pytest.approx(1_471_190_400 + 9 * 869_760)
    assert by_idx[16] == pytest.approx(1_484_733_600.0)
    assert by_idx[23] == pytest.approx(1_488_211_200.0)
    assert by_idx[24] == pytest.approx(1_488_708_000.0)


def test_timestamp_without_test_rows_continues_at_the_train_rate(spark) -> None:
    ev = spark.createDataFrame([(0,), (4,), (5,)], "idx long")
    out = {r.idx: r.timestamp for r in add_timestamp(ev, 5, 5).collect()}
    assert out[5] - out[4] == pytest.approx(out[4] / 4 - out[0] / 4)


def test_timestamp_rejects_bad_counts(spark) -> None:
    ev = spark.createDataFrame([(0,)], "idx long")
    with pytest.raises(InputError, match="n_train"):
        add_timestamp(ev, 1, 5)
    with pytest.raises(InputError, match="n_total"):
        add_timestamp(ev, 5, 4)


def test_time_stats_full_matches_reference(spark) -> None:
    ev = add_timestamp(events_spark(spark), N_TRAIN, N_TOTAL)
    out = add_time_stats(ev, serving=False).toPandas()
    expected = time_stats(with_timestamp(events_pandas()), serving=False)
    assert_frame_matches(out, expected, ["timestamp", *STATS])
    row = out.set_index("idx")
    # user 3 has one event: mean = its own time, std null (ddof=1)
    assert row.at[7, "msno_timestamp_mean"] == pytest.approx(timestamp(7))
    assert math.isnan(row.at[7, "msno_timestamp_std"])
    # song 5 (one event at idx 16); user 4 (idx 20, 22): mean of the two, std = |diff| / sqrt(2)
    assert math.isnan(row.at[16, "song_timestamp_std"])
    assert row.at[20, "msno_timestamp_mean"] == pytest.approx((timestamp(20) + timestamp(22)) / 2)
    assert row.at[22, "msno_timestamp_std"] == pytest.approx(2 * 496_800 / math.sqrt(2))


def test_time_stats_serving_uses_only_earlier_rows_and_ties_are_independent(spark) -> None:
    ev = add_timestamp(events_spark(spark, tied=True), N_TRAIN, N_TOTAL)
    out = add_time_stats(ev, serving=True).toPandas()
    expected = time_stats(with_timestamp(events_pandas(tied=True)), serving=True)
    assert_frame_matches(out, expected, STATS)
    first = out[out["idx"] == 0].iloc[0]
    assert math.isnan(first["msno_timestamp_mean"])
    assert math.isnan(first["msno_timestamp_std"])
    # the two tied rows of user 0 at idx 24 both see exactly the user's 10 earlier rows
    tied = out[(out["idx"] == 24) & (out["msno"] == 0)]
    earlier = [timestamp(i) for i in (0, 2, 4, 6, 9, 12, 14, 16, 19, 23)]
    assert tied["msno_timestamp_mean"].tolist() == pytest.approx([sum(earlier) / 10] * 2)
