"""P(value | entity), batch and cumulative, with and without a basis mask."""

from __future__ import annotations

import math

import pytest
from pyspark.sql import functions as F
from reference_seq import conditional_share, events_pandas, events_spark

from relisten_spark.features.probability import add_batch_shares, add_conditional_share

pytestmark = pytest.mark.spark


def _compare(out, expected_df, expected) -> None:
    got = out.toPandas().sort_values(["idx", "msno", "song_id"]).reset_index(drop=True)
    order = expected_df.sort_values(["idx", "msno", "song_id"]).index
    want = [expected[i] for i in order]
    assert got["p"].tolist() == pytest.approx(want, nan_ok=True, rel=1e-12)


@pytest.mark.parametrize("serving", [False, True])
@pytest.mark.parametrize(("entity", "value"), [("msno", "source_type"), ("song_id", "source_system_tab")])
def test_share_matches_reference(spark, serving, entity, value) -> None:
    out = add_conditional_share(events_spark(spark, tied=True), entity, value, "p", serving)
    df = events_pandas(tied=True)
    _compare(out, df, conditional_share(df, entity, value, serving))


@pytest.mark.parametrize("serving", [False, True])
def test_basis_restricts_the_counted_rows(spark, serving) -> None:
    ev = events_spark(spark)
    out = add_conditional_share(ev, "msno", "song_id", "p", serving, basis=F.col("split") == "train")
    df = events_pandas()
    _compare(out, df, conditional_share(df, "msno", "song_id", serving, basis=df["split"] == "train"))
    # user 4 has no train rows: every share null, though its rows are output
    assert all(r.p is None for r in out.where(F.col("msno") == 4).collect())


def test_hand_computed_values_and_null_value_group(spark) -> None:
    # user 0: songs 0 0 1 1 1 0 (idx 0..5); a null value forms its own group
    rows = [(0, 0, 0), (1, 0, 0), (2, 0, 1), (3, 0, None), (4, 0, None), (5, 0, 0)]
    ev = spark.createDataFrame(rows, "idx long, msno int, song_id int")
    full = {r.idx: r.p for r in add_conditional_share(ev, "msno", "song_id", "p", False).collect()}
    assert full == pytest.approx({0: 0.5, 1: 0.5, 2: 1 / 6, 3: 1 / 3, 4: 1 / 3, 5: 0.5})
    serving = {r.idx: r.p for r in add_conditional_share(ev, "msno", "song_id", "p", True).collect()}
    assert serving[0] is None
    assert serving == pytest.approx({0: serving[0], 1: 1.0, 2: 0.0, 3: 0.0, 4: 0.25, 5: 0.4})
    assert not math.isnan(serving[5])


@pytest.mark.parametrize("basis", [None, "train"])
def test_batch_shares_equal_the_window_shares(spark, basis) -> None:
    ev = events_spark(spark, tied=True).withColumn(
        "value", F.when(F.col("idx") % 5 == 0, F.lit(None)).otherwise(F.col("source_type"))
    )
    mask = None if basis is None else F.col("split") == "train"
    shares = {"p_type": "source_type", "p_value": "value"}
    got = add_batch_shares(ev, "msno", shares, mask).toPandas().sort_values("idx").reset_index(drop=True)
    for name, value in shares.items():
        want = add_conditional_share(ev, "msno", value, name, False, mask).toPandas()
        want = want.sort_values("idx").reset_index(drop=True)
        assert got[name].tolist() == pytest.approx(want[name].tolist(), nan_ok=True, rel=1e-12)
    assert got.columns.tolist() == [*ev.columns, *shares]
    if basis is None:  # every user has rows, so every share is defined, the null group's too
        assert got["p_value"].notna().all()


def test_batch_share_hand_values_with_a_null_group(spark) -> None:
    rows = [(0, 0, 0), (1, 0, 0), (2, 0, 1), (3, 0, None), (4, 0, None), (5, 0, 0)]
    ev = spark.createDataFrame(rows, "idx long, msno int, song_id int")
    full = {r.idx: r.p for r in add_batch_shares(ev, "msno", {"p": "song_id"}).collect()}
    assert full == pytest.approx({0: 0.5, 1: 0.5, 2: 1 / 6, 3: 1 / 3, 4: 1 / 3, 5: 0.5})


def test_batch_share_pair_keys_keep_extreme_and_null_values_apart(spark) -> None:
    # int values at the ends of the int range, -1 and null: every one its own group per user
    values = [-(2**31), 2**31 - 1, -1, None, None, 0, -(2**31)]
    rows = [(i, 1 + i % 2, v) for i, v in enumerate(values)] + [(10, 3, None), (11, 3, 5)]
    ev = spark.createDataFrame(rows, "idx long, msno int, value int")
    got = {r.idx: r.p for r in add_batch_shares(ev, "msno", {"p": "value"}).collect()}
    # user 1: idx 0 2 4 6 (-2^31, -1, null, -2^31); user 2: idx 1 3 5 (2^31-1, null, 0)
    want = {0: 0.5, 2: 0.25, 4: 0.25, 6: 0.5, 1: 1 / 3, 3: 1 / 3, 5: 1 / 3, 10: 0.5, 11: 0.5}
    assert got == pytest.approx(want)
