"""The feature job end to end on the tiny dataset: shape, manifest, parity with the pandas
reference of the F-core families, hand-checked values, and the serving profile's point-in-time
guarantees (future rows, appended 'score' rows).

Four feature computations in all (module fixtures): full, serving through ``run`` (written to a
throw-away lake), serving with changed / deleted later rows, serving with appended score rows.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from reference_core import reference
from tiny import N_TRAIN, events_rows, tiny_frames, tiny_pandas

from relisten_spark import lake, schemas
from relisten_spark.config import Config, load_config
from relisten_spark.features import build, manifest
from relisten_spark.features.build import compute_features
from relisten_spark.features.catalogue import catalogue, gbdt_columns

pytestmark = pytest.mark.spark

CUTOFF = 176  # holdout_cutoff of 220 train rows at holdout_fraction 0.2
APPENDED = (N_TRAIN + 80, "u02", "s03", "discover", "Explore", "online-playlist", None, "test")
KEYS = list(build.KEY_COLUMNS)
# columns of the F-core families compared with the reference (neighbour copies included)
NOT_MINE = ("before_composer_song_cnt", "before_artist_name", "after_artist_name")


def _config(root: Path | None = None, profile: str = "full") -> Config:
    overrides = [
        "spark.master=local[2]",
        "features.svd_power_iters=1",
        "features.svd_oversample=2",
        f"features.profile={profile}",
    ]
    if root is not None:
        overrides += [f"lake.root={root}"]
    return load_config(None, overrides)


def _collect(feature_set: build.FeatureSet) -> tuple[pd.DataFrame, pd.DataFrame]:
    try:
        features = feature_set.features.toPandas().set_index("idx").sort_index()
        return features, feature_set.manifest.toPandas()
    finally:
        feature_set.release()


def _frames_equal(got: pd.DataFrame, want: pd.DataFrame, columns: list[str]) -> list[str]:
    """Columns where ``got`` and ``want`` differ (nulls equal; floats within 1e-6 relative)."""
    bad = []
    for c in columns:
        a = pd.to_numeric(got[c], errors="coerce").astype(float).to_numpy()
        b = pd.to_numeric(want[c], errors="coerce").astype(float).to_numpy()
        same = (np.isnan(a) & np.isnan(b)) | (np.abs(a - b) <= 1e-6 * np.maximum(1.0, np.abs(b)))
        if not same.all():
            bad.append(c)
    return bad


@pytest.fixture(scope="module")
def lake_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("features_lake")


@pytest.fixture(scope="module")
def full(spark, lake_root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The full profile of the tiny dataset; its features are also written to the lake."""
    result = compute_features(spark, tiny_frames(spark), "full", _config())
    lake.write(
        spark,
        result.features,
        lake.table_path(str(lake_root), "silver", "features"),
        partition_by=["profile"],
        replace_where={"profile": "full"},
    )
    return _collect(result)


@pytest.fixture(scope="module")
def serving_run(spark, lake_root: Path, full) -> dict:
    """``run`` on bronze tables of the tiny dataset plus one appended test row (idx 300)."""
    frames = tiny_frames(spark, [*events_rows(), APPENDED])
    for name in ("events", "members", "songs", "song_extra"):
        lake.write(spark, getattr(frames, name), lake.table_path(str(lake_root), "bronze", name))
    summary = build.run(spark, _config(lake_root, "serving"))
    features = lake.read(spark, lake.table_path(str(lake_root), "silver", "features"))
    return {"summary": summary, "features": features.toPandas()}


@pytest.fixture(scope="module")
def serving(serving_run) -> pd.DataFrame:
    table = serving_run["features"]
    return table[table["profile"] == "serving"].set_index("idx").sort_index()


# ---- full profile ------------------------------------------------------------------------------
def test_full_has_one_row_per_event_and_clean_keys(full) -> None:
    features, _ = full
    events = pd.DataFrame(events_rows(), columns=schemas.EVENTS.fieldNames()).set_index("idx")
    assert list(features.index) == list(range(N_TRAIN + 80))
    for key in ("msno", "song_id", "split"):
        assert features[key].notna().all()
        assert (features[key] == events[key]).all()
    assert (features["profile"] == "full").all()
    assert features["target"].isna().sum() == 80


def test_full_columns_are_the_manifest_with_the_388_gbdt_columns(full) -> None:
    features, man = full
    assert list(features.columns) == [k for k in KEYS if k != "idx"] + list(man["name"])
    assert len(man) == len(catalogue()) == 453
    gbdt = set(man.loc[man["in_gbdt"], "name"])
    assert gbdt == set(gbdt_columns())
    assert len(gbdt) == 388
    assert list(man["name"][:388]) == gbdt_columns()  # the thesis code's list (package data)
    nets_extra = {
        "msno_code",
        "song_code",
        "before_song_code",
        "after_song_code",
        "second_genre_id",
        "before_song_component_20",
        "after_song_component_45",
    }
    assert nets_extra <= set(man.loc[man["in_nn"] & ~man["in_gbdt"], "name"])
    assert set(man["entity"]) == {"user", "song", "context"}
    assert set(man["horizon"]) == {"STATIC", "ROW", "PAST", "BATCH", "FUTURE"}
    coded = man[man["categorical"]].set_index("name")
    assert coded["cardinality"].notna().all()
    for name, card in coded["cardinality"].items():
        assert features[name].min() >= 0, name
        assert features[name].max() < card, name
    types = dict(zip(man["name"], man["dtype"], strict=True))
    assert types["song_component_0"] == "float"
    assert types["artist_name"] == "int"


def test_full_matches_the_pandas_reference(full) -> None:
    features, _ = full
    expected = reference(tiny_pandas(), "full")
    columns = [c for c in expected.columns if c not in NOT_MINE]
    assert len(columns) > 100
    assert _frames_equal(features, expected, columns) == []


def test_full_hand_checked_values(full) -> None:
    f, _ = full
    log = math.log1p
    # label codes (0 = missing): system tabs sorted discover, explore, listen with, my library,
    # null, radio, search; idx 0 = (listen with, Online playlist more, radio); idx 7 all missing
    assert (f.at[0, "source_system_tab"], f.at[0, "source_screen_name"], f.at[0, "source_type"]) == (3, 4, 6)
    assert (f.at[7, "source_system_tab"], f.at[7, "source"]) == (0, 1)
    # members: u01 bd 0 -> null, no gender -> 0, city 1 = code 1 of {1,4,5,13,15,22}; u12 has no row
    u01, u05, u12 = f[f.msno == "u01"].iloc[0], f[f.msno == "u05"].iloc[0], f[f.msno == "u12"].iloc[0]
    assert math.isnan(u01["bd"])
    assert u01["bd_missing"] == 1
    assert u01["gender"] == 0
    assert u01["city"] == 1
    assert u05["bd"] == 74.0
    assert u05["city"] == 6
    assert u12["city"] == 0
    assert math.isnan(u12["bd"])
    assert u01["registration_init_time"] == 1_313_769_600  # 2011-08-20 00:00 UTC+8
    u10 = f[f.msno == "u10"]
    assert (u10["duration"] == 2_678_400).all()  # 2017-01-10 .. 2017-02-10
    assert math.isnan(f[f.msno == "u08"].iloc[0]["duration"])  # expiration 20170230 is no date
    # songs: "Brandy" -> first artist "Br" (s01, s07, s21: 18 + 19 + 5 rows); "A and B" counts 2
    s01 = f[f.song_id == "s01"].iloc[0]
    assert s01["song_length"] == pytest.approx(log(247_640))
    assert s01["artist_song_cnt"] == pytest.approx(log(3))
    assert s01["artist_rec_cnt"] == pytest.approx(log(42))
    assert s01["song_rec_cnt"] == pytest.approx(log(18))
    assert s01["artist_cnt"] == 2
    assert s01["composer_cnt"] == 3  # "TEDDY|  FUTURE BOUNCE|  Bekuh BOOM", first token "TEDDY"
    # composer "TEDDY": s01, s06, s21 in the events (s24 never played): 18 + 21 + 5 rows
    assert s01["composer_song_cnt"] == pytest.approx(log(3))
    assert s01["composer_rec_cnt"] == pytest.approx(log(44))
    s04 = f[f.song_id == "s04"].iloc[0]
    assert (s04["genre_id_cnt"], s04["composer_cnt"], s04["language"]) == (4, 2, 0)  # 4 genres, "a\\b", -1
    assert s04["first_genre_id"] > 0
    assert s04["second_genre_id"] > 0
    assert s04["third_genre_id"] > 0
    s02 = f[f.song_id == "s02"].iloc[0]
    assert (s02["composer"], s02["composer_cnt"], s02["artist_cnt"]) == (0, 0, 2)
    assert math.isnan(s02["composer_song_cnt"])  # missing composer -> null count, not a group
    s05 = f[f.song_id == "s05"].iloc[0]
    assert (s05["first_genre_id"], s05["genre_id_cnt"], s05["isrc_missing"], s05["cc"]) == (0, 0, 1, 0)
    assert math.isnan(s05["genre_song_cnt"])
    assert math.isnan(s05["yy"])
    # ISRC: TW (s01 s07 s08 s11 s14 s17 and meta-less s25), years 2012 / 1999 / 1918
    assert s01["yy"] == 2012.0
    assert s01["cc_song_cnt"] == pytest.approx(log(7))
    assert f[f.song_id == "s03"].iloc[0]["yy"] == 1999.0
    assert f[f.song_id == "s03"].iloc[0]["yy_song_cnt"] == pytest.approx(log(3))  # s03 s09 s26
    assert f[f.song_id == "s06"].iloc[0]["yy"] == 1918.0
    s25 = f[f.song_id == "s25"].iloc[0]  # no songs.csv row, but an ISRC
    assert (s25["song_id_missing"], s25["isrc_missing"], s25["artist_name"]) == (1, 0, 0)
    assert math.isnan(s25["genre_id_cnt"])
    assert math.isnan(s25["artist_song_cnt"])
    assert f.loc[f.msno == "u01", "msno_rec_cnt"].iloc[0] == pytest.approx(log(80))
    # step 8, user u10 (7 rows, all in the TP basis): row 161 plays s03 (artist "X", language 52,
    # genre 465, xxx "AB1", year 1999); u10's songs s01 s02 s15 s03 s03 s30 s12
    r = f.loc[161]
    assert r["msno_artist_name_prob"] == pytest.approx(2 / 7)
    assert r["msno_language_prob"] == pytest.approx(3 / 7)
    assert r["msno_first_genre_id_prob"] == pytest.approx(4 / 7)
    assert r["msno_xxx_prob"] == pytest.approx(2 / 7)
    assert r["msno_yy_prob"] == pytest.approx(2 / 7)
    assert r["artist_msno_cnt"] == pytest.approx(log(6))  # Br, A, Coldplay, X, BLACKPINK, missing
    # language codes 3->1, 10->2, 17->3, 31->4, 52->5, missing/-1 -> 0
    assert (r["msno_language_5"], r["msno_language_4"], r["msno_language_0"]) == pytest.approx(
        (3 / 7, 2 / 7, 1 / 7)
    )
    # song s20: rows 131 (local-library), 175 (song), 275 (missing type)
    assert f.at[131, "song_source_type_prob"] == pytest.approx(1 / 3)
    # step 9 on u10: 49 (s01, local-library) -> 56 (s02, missing type) -> 70 (s15) ...
    assert f.at[56, "before_song_length"] == pytest.approx(log(247_640))
    assert (f.at[56, "before_artist_same"], f.at[56, "before_type_same"]) == (0.0, 0.0)
    assert f.at[56, "after_song_length"] == pytest.approx(log(282_697))
    assert f.at[49, "before_song_length"] == pytest.approx(log(247_640))  # first event: own song
    assert (f.at[49, "before_artist_same"], f.at[49, "before_type_same"]) == (1.0, 1.0)
    assert f.at[253, "after_song_length"] == pytest.approx(log(254_880))  # last event: own song
    assert (f.at[161, "before_artist_same"], f.at[161, "before_type_same"]) == (1.0, 1.0)
    # time: t(49) = 49/219 * 13,046,400 + 1,471,190,400 = 1,474,109,457.5; reg. 2017-01-10, expiry 2017-02-10
    assert f.at[49, "time_spent"] == -9_868_142
    assert f.at[49, "time_left"] == 12_546_542


def test_full_neighbour_columns_copy_the_neighbouring_row(full) -> None:
    """before_X / after_X equal X of the user's previous / next event (own row at the ends)."""
    f, _ = full
    ordered = f.reset_index().sort_values("idx")
    prev = ordered.groupby("msno")["idx"].shift(1).fillna(ordered["idx"]).astype(int)
    nxt = ordered.groupby("msno")["idx"].shift(-1).fillna(ordered["idx"]).astype(int)
    for side, pick in (("before", prev), ("after", nxt)):
        names = [c for c in f.columns if c.startswith(f"{side}_") and c[len(side) + 1 :] in f.columns]
        names = [c for c in names if not c.endswith(("source_type", "source_screen_name", "timestamp"))]
        assert len(names) > 60
        got = f.loc[ordered["idx"], names].to_numpy(dtype=float)
        want = f.loc[pick.to_numpy(), [c[len(side) + 1 :] for c in names]].to_numpy(dtype=float)
        assert np.allclose(got, want, equal_nan=True)
    assert (f["before_song_code"] == f.loc[prev.sort_index().to_numpy(), "song_code"].to_numpy()).all()


# ---- serving profile ---------------------------------------------------------------------------
@pytest.mark.slow
def test_run_writes_the_serving_partition_beside_the_full_one(spark, serving_run, lake_root: Path) -> None:
    table = serving_run["features"]
    assert table.groupby("profile").size().to_dict() == {"full": 300, "serving": 301}
    summary = serving_run["summary"]
    assert (summary["profile"], summary["rows"]) == ("serving", 301)
    man = lake.read(spark, lake.table_path(str(lake_root), "silver", "feature_manifest")).toPandas()
    assert summary["columns"] == len(man) == len(manifest.profile_specs("serving"))
    assert set(man["horizon"]) <= {"STATIC", "ROW", "PAST"}
    assert len(man[man["in_gbdt"]]) == 388 - 83  # the 83 FUTURE columns of the 388 are left out
    serving = table[table["profile"] == "serving"]
    future = [s.name for s in catalogue() if s.horizon == "FUTURE"]
    assert serving[future].isna().all().all()
    svd_member = lake.read(spark, lake.table_path(str(lake_root), "silver", "svd_member")).toPandas()
    assert set(svd_member["profile"]) == {"serving"}
    assert svd_member["msno"].nunique() == 12


@pytest.mark.slow
def test_serving_matches_the_pandas_reference(serving) -> None:
    data = tiny_pandas([*events_rows(), APPENDED])
    expected = reference(data, "serving", CUTOFF)
    columns = [c for c in expected.columns if c not in NOT_MINE]
    assert len(columns) > 90
    assert _frames_equal(serving, expected, columns) == []


@pytest.mark.slow
def test_serving_hand_checked_values(serving) -> None:
    s, log = serving, math.log1p
    # u10's earlier rows before idx 161: 49 (s01), 56 (s02), 70 (s15), 148 (s03)
    assert s.at[161, "msno_rec_cnt"] == pytest.approx(log(4))
    assert s.at[161, "msno_artist_name_prob"] == pytest.approx(1 / 4)
    assert s.at[161, "artist_msno_cnt"] == pytest.approx(log(4))
    assert s.at[161, "msno_language_5"] == pytest.approx(2 / 4)
    # s20: idx 131 is its first row (nothing earlier), 175 sees 131 (local-library vs song)
    assert s.at[131, "song_rec_cnt"] == 0.0
    assert math.isnan(s.at[131, "song_source_type_prob"])
    assert s.at[175, "song_rec_cnt"] == pytest.approx(log(1))
    assert s.at[175, "song_source_type_prob"] == 0.0
    # u11 and s30 occur only after the cutoff: unseen codes (n + 1), zero SVD vectors
    u11 = s[s.msno == "u11"]
    assert (u11["msno_code"] == u11["msno_code"].max()).all()
    assert u11["msno_code"].max() == s["msno_code"].max()
    assert (u11["member_component_0"] == 0.0).all()
    assert s.loc[s.song_id == "s30", "song_code"].nunique() == 1


def _changed_and_cut(i_changed: int, i_cut: int) -> list[tuple]:
    """Rows after ``i_changed`` get other users, songs and sources; rows after ``i_cut`` go."""
    rows = []
    for row in [*events_rows(), APPENDED]:
        idx = row[0]
        if idx > i_cut:
            continue
        if idx > i_changed:
            user = f"u{(idx % 12) + 1:02d}"
            song = f"s{(idx * 7) % 30 + 1:02d}"
            row = (idx, user, song, "radio", "Radio", "radio", row[6], row[7])
        rows.append(row)
    return rows


@pytest.mark.slow
def test_serving_rows_ignore_changed_and_deleted_later_rows(spark, serving) -> None:
    i_changed, i_cut = 200, 260  # a holdout train row; later rows changed, rows after 260 deleted
    frames = tiny_frames(spark, _changed_and_cut(i_changed, i_cut))
    changed, _ = _collect(compute_features(spark, frames, "serving", _config()))
    assert len(changed) == i_cut + 1
    features = [c for c in serving.columns if c not in ("profile",)]
    kept = range(0, i_changed + 1)
    base = serving.loc[kept, features]
    assert _frames_equal(changed.loc[kept, features], base, [c for c in features if c not in KEYS]) == []
    assert (changed.loc[kept, ["msno", "song_id"]] == base[["msno", "song_id"]]).all().all()
    # and the test is not vacuous: the changed rows do differ
    later = list(range(i_changed + 1, i_cut + 1))
    assert _frames_equal(changed.loc[later], serving.loc[later], ["msno_rec_cnt", "song_rec_cnt"]) != []


@pytest.mark.slow
def test_score_rows_get_the_features_of_an_event_at_that_time(spark, serving) -> None:
    """Hypothetical events appended at ONE idx: each gets exactly the features the appended test
    row gets at that idx, and no other row changes (scoring's contract)."""
    idx = APPENDED[0]
    score = [
        (idx, *APPENDED[1:6], None, "score"),  # the appended test row's event, as a score row
        (idx, "u02", "s01", "discover", "Explore", "online-playlist", None, "score"),  # same user again
        (idx, "u11", "s30", "search", "Search", "song", None, "score"),  # post-cutoff user and song
        (idx, "u77", "s77", "search", "Search", "song", None, "score"),  # brand-new user and song
    ]
    frames = tiny_frames(spark, [*events_rows(), *score])
    scored, _ = _collect(compute_features(spark, frames, "serving", _config()))
    features = [c for c in serving.columns if c not in KEYS and c != "profile"]
    history = scored.loc[: idx - 1]
    assert _frames_equal(history, serving.loc[: idx - 1], features) == []
    # the score rows in the order of ``score`` (they tie on idx: their order in the frame is arbitrary)
    position = {(row[1], row[2]): i for i, row in enumerate(score)}
    rows = scored.loc[[idx]].reset_index()
    rows["_order"] = [position[pair] for pair in zip(rows["msno"], rows["song_id"], strict=True)]
    rows = rows.sort_values("_order").reset_index(drop=True)
    assert list(rows["split"]) == ["score"] * 4
    assert rows["target"].isna().all()
    twin = rows.iloc[[0]].set_index(pd.Index([idx]))
    assert _frames_equal(twin, serving.loc[[idx]], features) == []
    # tied score rows do not see each other: u02's second row has the same user history
    assert rows.at[1, "msno_rec_cnt"] == rows.at[0, "msno_rec_cnt"]
    assert rows.at[1, "before_song_code"] == rows.at[0, "before_song_code"]
    new = rows.iloc[3]
    assert new["msno_rec_cnt"] == 0.0
    assert new["song_rec_cnt"] == 0.0
    assert new["member_component_0"] == 0.0
