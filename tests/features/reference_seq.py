"""Pandas reference implementations of the sequence families (tests only), written straight from
FEATURES.md with explicit loops over rows, plus the small hand-made events frame they run on.

Every function takes the events as a pandas frame ``[idx, msno, song_id, source_system_tab,
source_screen_name, source_type, split, ...]`` and returns a copy with the new columns. Serving
variants only look at rows with a strictly smaller ``idx`` (ties never see each other).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from pyspark.sql import types as T

T0, T1, T2 = 1_471_190_400, 1_484_236_800, 1_488_211_200
ENTITIES = (("msno", "msno"), ("song_id", "song"))

# (idx, msno, song_id, source_system_tab, source_screen_name, source_type, split, target, artist_name)
# 16 train rows (idx 0..15) and 8 test rows. Edge cases: user 3 has a single event (first = last),
# user 4 only appears in test, song 5 has one event (in test), song 4 has no artist (code 0).
ARTIST_OF_SONG = {0: 1, 1: 1, 2: 2, 3: 3, 4: 0, 5: 2}
_ROWS = [
    (0, 0, 0, 1, 2, 3, "train", 1),
    (1, 1, 1, 1, 2, 3, "train", 0),
    (2, 0, 1, 2, 2, 1, "train", 1),
    (3, 2, 2, 0, 0, 0, "train", 0),
    (4, 0, 0, 1, 5, 3, "train", 1),
    (5, 1, 3, 3, 2, 3, "train", 1),
    (6, 0, 2, 1, 2, 3, "train", 0),
    (7, 3, 4, 2, 4, 1, "train", 0),
    (8, 1, 1, 1, 2, 4, "train", 1),
    (9, 0, 0, 1, 2, 3, "train", 1),
    (10, 2, 0, 0, 0, 2, "train", 0),
    (11, 1, 2, 1, 2, 3, "train", 1),
    (12, 0, 3, 2, 5, 3, "train", 0),
    (13, 2, 2, 1, 1, 1, "train", 1),
    (14, 0, 1, 1, 2, 3, "train", 1),
    (15, 1, 0, 3, 2, 3, "train", 0),
    (16, 0, 5, 1, 2, 3, "test", None),
    (17, 2, 1, 2, 2, 1, "test", None),
    (18, 1, 0, 1, 2, 3, "test", None),
    (19, 0, 0, 0, 0, 0, "test", None),
    (20, 4, 2, 1, 2, 3, "test", None),
    (21, 1, 3, 1, 2, 4, "test", None),
    (22, 4, 0, 2, 5, 3, "test", None),
    (23, 0, 1, 1, 2, 3, "test", None),
]
N_TRAIN, N_TOTAL = 16, 24
# Scoring-style rows appended at ONE idx (= max + 1): they must not see each other in serving.
TIED_ROWS = [
    (24, 0, 2, 1, 2, 3, "score", None),
    (24, 0, 4, 2, 5, 1, "score", None),
    (24, 5, 0, 1, 2, 3, "score", None),
]

EVENTS_SCHEMA = T.StructType(
    [
        T.StructField("idx", T.LongType()),
        T.StructField("msno", T.IntegerType()),
        T.StructField("song_id", T.IntegerType()),
        T.StructField("source_system_tab", T.IntegerType()),
        T.StructField("source_screen_name", T.IntegerType()),
        T.StructField("source_type", T.IntegerType()),
        T.StructField("split", T.StringType()),
        T.StructField("target", T.IntegerType()),
        T.StructField("artist_name", T.IntegerType()),
    ]
)


def event_rows(tied: bool = False) -> list[tuple]:
    """The literal rows (with the artist code of each song appended), optionally with the tied
    scoring rows."""
    rows = _ROWS + (TIED_ROWS if tied else [])
    return [(*row, ARTIST_OF_SONG[row[2]]) for row in rows]


def events_pandas(tied: bool = False) -> pd.DataFrame:
    return pd.DataFrame(event_rows(tied), columns=[f.name for f in EVENTS_SCHEMA.fields])


def events_spark(spark, tied: bool = False):
    return spark.createDataFrame(event_rows(tied), EVENTS_SCHEMA)


def timestamp(idx: int, n_train: int = N_TRAIN, n_total: int = N_TOTAL) -> float:
    """FEATURES.md step 5, with the actual row counts."""
    if idx < n_train:
        return idx / (n_train - 1) * (T1 - T0) + T0
    return (idx - (n_train - 1)) / (n_total - n_train) * (T2 - T1) + T1


def with_timestamp(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["timestamp"] = [timestamp(i) for i in out["idx"]]
    return out


def _group(df: pd.DataFrame, key: str, i: int) -> pd.DataFrame:
    return df[df[key] == df.at[i, key]]


def window_counts(df: pd.DataFrame, windows: Sequence[int], include_after: bool) -> pd.DataFrame:
    out = df.copy()
    for key, prefix in ENTITIES:
        for w in windows:
            before, after = [], []
            for i in df.index:
                idx = df.at[i, "idx"]
                same = _group(df, key, i)["idx"]
                before.append(math.log1p(((same >= idx - w) & (same <= idx - 1)).sum()))
                after.append(math.log1p(((same >= idx) & (same <= idx + w - 1)).sum()))
            out[f"{prefix}_{w}_before_cnt"] = before
            if include_after:
                out[f"{prefix}_{w}_after_cnt"] = after
    return out


def till_now(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for key, prefix in ENTITIES:
        out[f"{prefix}_till_now_cnt"] = [
            math.log1p((_group(df, key, i)["idx"] < df.at[i, "idx"]).sum()) for i in df.index
        ]
    return out


def time_stats(df: pd.DataFrame, serving: bool) -> pd.DataFrame:
    out = df.copy()
    for key, prefix in ENTITIES:
        means, stds = [], []
        for i in df.index:
            same = _group(df, key, i)
            if serving:
                same = same[same["idx"] < df.at[i, "idx"]]
            values = same["timestamp"]
            means.append(values.mean() if len(values) else np.nan)
            stds.append(values.std(ddof=1) if len(values) > 1 else np.nan)
        out[f"{prefix}_timestamp_mean"] = means
        out[f"{prefix}_timestamp_std"] = stds
    return out


def neighbors(df: pd.DataFrame, include_after: bool, fill: Mapping[str, float] | None) -> pd.DataFrame:
    """Step 6: previous / next row of the user; own values at the ends; split-mean or constant fill."""
    out = df.copy()
    copied = ("song_id", "source_type", "source_screen_name")
    sides = ["before"] + (["after"] if include_after else [])
    for side in sides:
        values: dict[str, list] = {c: [] for c in copied}
        gaps = []
        for i in df.index:
            same = _group(df, "msno", i)
            idx = df.at[i, "idx"]
            if side == "before":
                near = same[same["idx"] < idx].sort_values("idx").tail(1)
            else:
                near = same[same["idx"] > idx].sort_values("idx").head(1)
            src = near.iloc[0] if len(near) else df.loc[i]
            for c in copied:
                values[c].append(int(src[c]))
            if len(near):
                gap = df.at[i, "timestamp"] - src["timestamp"]
                gaps.append(math.log1p(gap if side == "before" else -gap))
            else:
                gaps.append(np.nan)
        for c in copied:
            out[f"{side}_{c}"] = values[c]
        out[f"{side}_timestamp"] = gaps
        name = f"{side}_timestamp"
        if fill is None:
            means = out.groupby("split")[name].mean()
            out[name] = out[name].fillna(out["split"].map(means))
        else:
            out[name] = out[name].fillna(fill[name])
    return out


def conditional_share(
    df: pd.DataFrame, entity: str, value: str, serving: bool, basis: pd.Series | None = None
) -> list[float]:
    """P(value | entity) per row over the basis rows (all when None); null value = own group."""
    basis = pd.Series(True, index=df.index) if basis is None else basis
    shares = []
    for i in df.index:
        rows = df[(df[entity] == df.at[i, entity]) & basis]
        if serving:
            rows = rows[rows["idx"] < df.at[i, "idx"]]
        own = df.at[i, value]
        same = rows[value].isna() if pd.isna(own) else rows[value] == own
        shares.append(same.sum() / len(rows) if len(rows) else np.nan)
    return shares


def source_profile(df: pd.DataFrame, serving: bool, codes: Mapping[str, Sequence[int]]) -> pd.DataFrame:
    out = df.copy()
    for column, listed in codes.items():
        for code in listed:
            shares = []
            for i in df.index:
                rows = _group(df, "msno", i)
                if serving:
                    rows = rows[rows["idx"] < df.at[i, "idx"]]
                shares.append((rows[column] == code).sum() / len(rows) if len(rows) else np.nan)
            out[f"msno_{column}_{code}"] = shares
        out[f"msno_{column}_prob"] = conditional_share(df, "msno", column, serving)
    return out


def assert_frame_matches(actual: pd.DataFrame, expected: pd.DataFrame, columns: Sequence[str]) -> None:
    """Row by row (both sorted by every key column) and column by column: equal, or within
    1e-9 relative / 1e-9 absolute for floats; nulls must match nulls."""
    keys = ["idx", "msno", "song_id", "source_type"]
    actual = actual.sort_values(keys).reset_index(drop=True)
    expected = expected.sort_values(keys).reset_index(drop=True)
    assert len(actual) == len(expected)
    for column in columns:
        got = actual[column].astype(float).to_numpy()
        want = expected[column].astype(float).to_numpy()
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=column)
