"""The user source profile (FEATURES.md step 2) against the pandas reference."""

from __future__ import annotations

import math

import pytest
from reference_seq import assert_frame_matches, events_pandas, events_spark, source_profile

from relisten_spark.features.source_profile import add_source_profile, user_source_shares

pytestmark = pytest.mark.spark

# code 6 of source_type never occurs: its column must still exist (0.0, or null in serving's first)
CODES = {
    "source_system_tab": [0, 1, 2, 3],
    "source_screen_name": [0, 1, 2, 4, 5],
    "source_type": [0, 1, 2, 3, 4, 6],
}


def _columns() -> list[str]:
    shares = [f"msno_{c}_{v}" for c, listed in CODES.items() for v in listed]
    return shares + [f"msno_{c}_prob" for c in CODES]


def test_full_profile_matches_reference(spark) -> None:
    out = add_source_profile(events_spark(spark), serving=False, codes=CODES).toPandas()
    expected = source_profile(events_pandas(), serving=False, codes=CODES)
    assert_frame_matches(out, expected, _columns())
    # Hand-computed, user 2 (rows 3, 10, 13, 17; source_type 0, 2, 1, 1): type 1 = 2/4
    row = out[out["idx"] == 13].iloc[0]
    assert row["msno_source_type_1"] == pytest.approx(0.5)
    assert row["msno_source_type_prob"] == pytest.approx(0.5)
    assert row["msno_source_type_6"] == 0.0
    for column in CODES:
        total = sum(row[f"msno_{column}_{v}"] for v in CODES[column])
        assert total == pytest.approx(1.0)


def test_serving_uses_only_earlier_rows_with_ties(spark) -> None:
    out = add_source_profile(events_spark(spark, tied=True), serving=True, codes=CODES).toPandas()
    expected = source_profile(events_pandas(tied=True), serving=True, codes=CODES)
    assert_frame_matches(out, expected, _columns())
    row = out[out["idx"] == 13].iloc[0]  # earlier rows of user 2: 3 (type 0), 10 (type 2)
    assert row["msno_source_type_0"] == pytest.approx(0.5)
    assert row["msno_source_type_prob"] == 0.0
    first = out[out["idx"] == 3].iloc[0]
    assert all(math.isnan(first[c]) for c in _columns())


def test_user_share_table_is_one_row_per_user(spark) -> None:
    shares = user_source_shares(events_spark(spark), CODES).toPandas().set_index("msno")
    assert sorted(shares.index) == [0, 1, 2, 3, 4]
    assert shares.at[3, "msno_source_type_1"] == 1.0  # user 3's single event
    assert shares.at[4, "msno_source_system_tab_2"] == 0.5  # user 4: tabs 1 and 2
