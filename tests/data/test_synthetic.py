"""The synthetic KKBOX generator: format, determinism, calibration and planted signal."""

from __future__ import annotations

import base64
import csv
import re
from pathlib import Path

import pandas as pd
import pytest
from conftest import KKBOX_HEADERS, KKBOX_SAMPLE
from sklearn.metrics import roc_auc_score

from relisten_spark.config import load_config
from relisten_spark.data.synthetic.generator import generate, run
from relisten_spark.errors import ConfigError

KKBOX_FILES = tuple(KKBOX_HEADERS)


def _read(path: Path) -> pd.DataFrame:
    """Read a generated CSV the way a KKBOX loader must: strings, empty stays empty."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kkbox")
    generate(out, users=2000, songs=5000, events=100_000, seed=11, test_fraction=0.2574)
    return out


@pytest.fixture(scope="module")
def frames(data: Path) -> dict[str, pd.DataFrame]:
    return {name: _read(data / name) for name in (*KKBOX_FILES, "truth.csv")}


@pytest.mark.parametrize("name", KKBOX_FILES)
def test_header_is_kkbox_header(data: Path, name: str) -> None:
    assert (data / name).open(encoding="utf-8").readline().rstrip("\n") == KKBOX_HEADERS[name]


@pytest.mark.skipif(not KKBOX_SAMPLE.is_dir(), reason="KKBOX sample not present")
@pytest.mark.parametrize("name", KKBOX_FILES)
def test_headers_match_the_real_kkbox_sample(name: str) -> None:
    assert (KKBOX_SAMPLE / name).open(encoding="utf-8").readline().rstrip("\n") == KKBOX_HEADERS[name]


@pytest.mark.parametrize("name", [*KKBOX_FILES, "truth.csv"])
def test_every_line_parses_on_its_own(data: Path, name: str) -> None:
    """Line-based parse: one record per physical line, quotes only around `"` or TAB fields."""
    raw = (data / name).read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    assert b"\r" not in raw
    assert raw.endswith(b"\n")
    lines = raw.decode("utf-8").split("\n")[:-1]
    width = len(lines[0].split(","))
    for line in lines:
        (fields,) = list(csv.reader([line]))
        assert len(fields) == width, line
        for value in fields:
            assert "\n" not in value
            assert "," not in value
            quoted = '"' + value.replace('"', '""') + '"'
            needs_quotes = '"' in value or "\t" in value
            assert (quoted in line) == needs_quotes or (not needs_quotes and value == ""), (line, value)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    runs = {}
    for label, seed in (("a", 5), ("b", 5), ("c", 6)):
        generate(tmp_path / label, users=300, songs=800, events=8000, seed=seed, test_fraction=0.25)
        runs[label] = {n: (tmp_path / label / n).read_bytes() for n in (*KKBOX_FILES, "truth.csv")}
    assert runs["a"] == runs["b"]
    assert all(runs["a"][n] != runs["c"][n] for n in runs["a"])


def test_scale_and_split(frames: dict[str, pd.DataFrame]) -> None:
    train, test = frames["train.csv"], frames["test.csv"]
    assert len(train) + len(test) == 100_000
    assert len(test) == round(100_000 * 0.2574)
    assert test["id"].astype(int).tolist() == list(range(len(test)))
    assert len(frames["members.csv"]) == 2000
    events = pd.concat([train, test])
    assert events["msno"].nunique() == 2000  # every member has an event
    assert events["song_id"].nunique() == 5000
    assert set(train["target"]) == {"0", "1"}


def test_target_rate_is_kkbox_rate(frames: dict[str, pd.DataFrame]) -> None:
    rate = frames["train.csv"]["target"].astype(int).mean()
    assert abs(rate - 0.5035) < 0.01


def test_pairs_unique_within_each_file_and_some_test_pairs_seen_in_train(
    frames: dict[str, pd.DataFrame],
) -> None:
    train, test = frames["train.csv"], frames["test.csv"]
    assert not train.duplicated(["msno", "song_id"]).any()
    assert not test.duplicated(["msno", "song_id"]).any()
    seen = test.merge(train[["msno", "song_id"]], on=["msno", "song_id"]).shape[0] / len(test)
    assert 0.05 < seen < 0.2


def test_truth_is_keyed_by_split_and_row(frames: dict[str, pd.DataFrame]) -> None:
    truth = frames["truth.csv"]
    n_train, n_test = len(frames["train.csv"]), len(frames["test.csv"])
    assert list(truth.columns) == ["split", "row", "p_true"]
    assert truth["split"].tolist() == ["train"] * n_train + ["test"] * n_test
    assert truth["row"].astype(int).tolist() == list(range(n_train)) + list(range(n_test))
    p = truth["p_true"].astype(float)
    assert p.between(0, 1, inclusive="neither").all()
    assert "p_true" not in frames["train.csv"].columns
    assert "p_true" not in frames["test.csv"].columns


def test_oracle_beats_popularity_on_last_fifth_of_train(frames: dict[str, pd.DataFrame]) -> None:
    train = frames["train.csv"]
    y = train["target"].astype(int).to_numpy()
    p = frames["truth.csv"]["p_true"].astype(float).to_numpy()[: len(train)]
    cut = int(len(train) * 0.8)
    plays = train["song_id"].iloc[:cut].value_counts()
    popularity = train["song_id"].iloc[cut:].map(plays).fillna(0).to_numpy()
    oracle = roc_auc_score(y[cut:], p[cut:])
    baseline = roc_auc_score(y[cut:], popularity)
    assert oracle > 0.8
    assert oracle > baseline + 0.15


def test_context_effect_and_shares(frames: dict[str, pd.DataFrame]) -> None:
    train = frames["train.csv"]
    y = train["target"].astype(int)
    share = train["source_system_tab"].value_counts(normalize=True)
    rate = y.groupby(train["source_system_tab"]).mean()
    assert share["my library"] == pytest.approx(0.50, abs=0.05)
    assert share["discover"] == pytest.approx(0.295, abs=0.05)
    assert share["radio"] == pytest.approx(0.065, abs=0.02)
    assert rate["my library"] > 0.6
    assert rate["radio"] < 0.3
    type_rate = y.groupby(train["source_type"]).mean()
    assert type_rate["local-library"] - type_rate["radio"] > 0.35
    assert {"null", ""} <= set(train["source_system_tab"])
    assert "Unknown" in set(train["source_screen_name"])


def test_activity_is_heavy_tailed(frames: dict[str, pd.DataFrame]) -> None:
    events = pd.concat([frames["train.csv"], frames["test.csv"]])
    listeners = events.drop_duplicates(["msno", "song_id"])["song_id"].value_counts()
    assert (listeners == 1).mean() == pytest.approx(0.62, abs=0.04)
    per_user = events["msno"].value_counts()
    assert per_user.max() > 8 * per_user.median()


def test_member_marginals(frames: dict[str, pd.DataFrame]) -> None:
    members = frames["members.csv"]
    bd = members["bd"].astype(int)
    assert (bd == 0).mean() == pytest.approx(0.58, abs=0.04)
    assert (members["gender"] == "").mean() == pytest.approx(0.58, abs=0.04)
    assert set(members["gender"]) == {"", "male", "female"}
    assert members["city"].astype(int).value_counts(normalize=True)[1] == pytest.approx(0.565, abs=0.04)
    assert (members["expiration_date"] == "19700101").sum() == 1
    assert members["registration_init_time"].str.fullmatch(r"20\d{6}").all()


def test_song_marginals_and_quirks(frames: dict[str, pd.DataFrame]) -> None:
    songs, extra = frames["songs.csv"], frames["song_extra_info.csv"]
    n_genres = songs["genre_ids"].map(lambda g: 0 if g == "" else len(g.split("|")))
    assert (n_genres == 1).mean() == pytest.approx(0.917, abs=0.03)
    assert (n_genres >= 2).any()
    assert (n_genres == 0).any()
    assert songs["genre_ids"].str.split("|").explode().value_counts().index[0] == "465"
    length = songs["song_length"].astype(int)
    assert length.median() == pytest.approx(233_639, rel=0.05)
    assert (songs["composer"] == "").mean() == pytest.approx(0.42, abs=0.05)
    assert (songs["lyricist"] == "").mean() == pytest.approx(0.73, abs=0.05)
    assert {"-1", ""} <= set(songs["language"])
    assert songs["composer"].str.contains(r"\| ?\S").any()
    assert songs["composer"].str.contains('"', regex=False).any()
    assert re.search(r"[\u4e00-\u9fff]", "".join(songs["artist_name"]))
    assert (extra["isrc"] == "").mean() == pytest.approx(0.1337, abs=0.03)
    codes = extra.loc[extra["isrc"] != "", "isrc"]
    assert codes.str.fullmatch(r"[A-Z]{2}[A-Z0-9]{3}\d{7}").mean() > 0.99


def test_ids_look_like_kkbox_ids(frames: dict[str, pd.DataFrame]) -> None:
    ids = pd.concat([frames["members.csv"]["msno"], frames["songs.csv"]["song_id"]])
    assert ids.str.len().eq(44).all()
    assert ids.str.endswith("=").all()
    assert all(len(base64.b64decode(i, validate=True)) == 32 for i in ids.iloc[::97])
    assert frames["members.csv"]["msno"].is_unique
    assert frames["songs.csv"]["song_id"].is_unique


def test_metadata_coverage_is_partial(frames: dict[str, pd.DataFrame]) -> None:
    played = set(pd.concat([frames["train.csv"], frames["test.csv"]])["song_id"])
    listed = set(frames["songs.csv"]["song_id"])
    assert 0 < len(played - listed) < 0.01 * len(played)  # played, no metadata
    assert 0 < len(listed - played) < 0.05 * len(listed)  # listed, never played
    assert len(played - set(frames["song_extra_info.csv"]["song_id"])) > len(played - listed)


def test_impossible_scale_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.synthetic\.events"):
        generate(tmp_path, users=100, songs=5000, events=1000, seed=1)


def test_run_writes_into_raw_dir(tmp_path: Path) -> None:
    cfg = load_config(
        None,
        [
            f"data.raw_dir={tmp_path / 'raw'}",
            "data.synthetic.users=200",
            "data.synthetic.songs=500",
            "data.synthetic.events=5000",
        ],
    )
    summary = run(cfg)
    assert summary["train_rows"] + summary["test_rows"] == 5000
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted([*KKBOX_FILES, "truth.csv"])
