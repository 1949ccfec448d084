"""KKBOX ingest: CSV quirks, quarantine, idx order, input errors, the real sample."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import KKBOX_HEADERS, KKBOX_SAMPLE
from deltalake import DeltaTable
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from relisten_spark import lake, schemas
from relisten_spark.config import Config
from relisten_spark.data import kkbox
from relisten_spark.errors import InputError
from relisten_spark.runs import RunFlags, using_flags

pytestmark = pytest.mark.spark

TRAIN_HEADER, TEST_HEADER, MEMBERS_HEADER, SONGS_HEADER, EXTRA_HEADER = KKBOX_HEADERS.values()


def _lines(*lines: str, eol: str = "\n", last_eol: bool = True) -> str:
    return eol.join(lines) + (eol if last_eol else "")


def _valid_files() -> dict[str, str]:
    return {
        "train.csv": _lines(TRAIN_HEADER, "u1,s1,my library,Local playlist more,local-library,1"),
        "test.csv": _lines(TEST_HEADER, "0,u2,s1,discover,Discover Feature,online-playlist"),
        "members.csv": _lines(
            MEMBERS_HEADER, "u1,1,0,,7,20110820,20170920", "u2,13,27,female,9,20150628,20170622"
        ),
        "songs.csv": _lines(SONGS_HEADER, "s1,247640,465,Artist,Composer,,3"),
        "song_extra_info.csv": _lines(EXTRA_HEADER, "s1,Song,TWUM71200043"),
    }


def _write_raw(cfg: Config, files: dict[str, str]) -> Path:
    raw = Path(cfg.data.raw_dir)
    raw.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (raw / name).write_bytes(text.encode("utf-8"))
    return raw


def _bronze(spark, cfg: Config, table: str):
    return lake.read(spark, lake.table_path(cfg.lake.root, "bronze", table))


@contextmanager
def tiny_splits(spark) -> Iterator[None]:
    """Scan every file in many small partitions, so line order crosses partition borders."""
    key = "spark.sql.files.maxPartitionBytes"
    old = spark.conf.get(key)
    spark.conf.set(key, "256")
    try:
        yield
    finally:
        spark.conf.set(key, old)


def test_csv_quirks(spark, tmp_lake: Config) -> None:
    """BOM, CRLF, quoted commas and quotes, empty -> null, literal null/Unknown, non-ASCII,
    tabs and NBSP, stripped ids, header-ordered columns, padding rows, the free-text name."""
    files = {
        "train.csv": _lines(
            "\ufeff" + TRAIN_HEADER,
            "u1,s1,my library,Local playlist more,local-library,1",
            " u2 ,s2,null,,local-playlist,0",
            "u1,s3,,,,1",
            eol="\r\n",
        ),
        "test.csv": _lines(
            TEST_HEADER,
            "0,u3,s1,discover,Unknown,online-playlist",
            "1,u1,s2,search,Search,song",
            ",,,,,",
            ",,,,,",
        ),
        # columns in another order than the real file: positions come from the header
        "members.csv": _lines(
            "msno,city,bd,gender,registered_via,expiration_date,registration_init_time",
            "u1,1,0,,7,20170920,20110820",
            "u2,13,-43,female,9,20170622,20150628",
            eol="\r\n",
        ),
        "songs.csv": _lines(
            SONGS_HEADER,
            "s1,247640,465,張信哲 (Jeff Chang),董貞,何啟弘,3",
            's2,266843,139|444,Akon,"Aliaune ""Akon"" Thiam| C. Kelly",,52',
            's3,230504,,"Ward, Zsuzsanna","戴佩妮\t",羅\u00a0森,-1',
        ),
        "song_extra_info.csv": _lines(
            EXTRA_HEADER,
            "s1,我們,TWUM71200043",
            "s2,\"Love mode feat.PE'Z & VERBAL(m-flo),",
            's3,"He said ""hi""",QMZSY1600015',
            "s4,Wachet auf| ruft, uns,GBUM71234567",
            's5,心債 (電視劇 香城浪子"" 主題曲)",HKE050031109',
            eol="\r\n",
        ),
    }
    _write_raw(tmp_lake, files)

    summary = kkbox.run(spark, tmp_lake)

    assert summary["rows"] == {"events": 5, "members": 2, "songs": 3, "song_extra": 5, "quarantine": 0}
    assert summary["padding_rows_dropped"]["test.csv"] == 2
    events = [
        (0, "u1", "s1", "my library", "Local playlist more", "local-library", 1, "train"),
        (1, "u2", "s2", "null", None, "local-playlist", 0, "train"),
        (2, "u1", "s3", None, None, None, 1, "train"),
        (3, "u3", "s1", "discover", "Unknown", "online-playlist", None, "test"),
        (4, "u1", "s2", "search", "Search", "song", None, "test"),
    ]
    assertDataFrameEqual(_bronze(spark, tmp_lake, "events"), spark.createDataFrame(events, schemas.EVENTS))
    members = [("u1", 1, 0, None, 7, 20110820, 20170920), ("u2", 13, -43, "female", 9, 20150628, 20170622)]
    assertDataFrameEqual(_bronze(spark, tmp_lake, "members"), spark.createDataFrame(members, schemas.MEMBERS))
    songs = [
        ("s1", 247640, "465", "張信哲 (Jeff Chang)", "董貞", "何啟弘", 3),
        ("s2", 266843, "139|444", "Akon", 'Aliaune "Akon" Thiam| C. Kelly', None, 52),
        ("s3", 230504, None, "Ward, Zsuzsanna", "戴佩妮\t", "羅\u00a0森", -1),
    ]
    assertDataFrameEqual(_bronze(spark, tmp_lake, "songs"), spark.createDataFrame(songs, schemas.SONGS))
    extra = [
        ("s1", "我們", "TWUM71200043"),
        ("s2", "\"Love mode feat.PE'Z & VERBAL(m-flo)", None),  # the unbalanced quote swallows nothing
        ("s3", 'He said "hi"', "QMZSY1600015"),
        ("s4", "Wachet auf| ruft, uns", "GBUM71234567"),
        ("s5", '心債 (電視劇 香城浪子"" 主題曲)"', "HKE050031109"),
    ]
    assertDataFrameEqual(
        _bronze(spark, tmp_lake, "song_extra"), spark.createDataFrame(extra, schemas.SONG_EXTRA)
    )


def test_parse_reasons(spark) -> None:
    """Each kind of bad line gets its reason; padding and CRLF lines are not quarantined."""
    header = tuple(MEMBERS_HEADER.split(","))
    lines = [
        "u1,1,27,male,7,20110820,20170920",
        "u2,1,abc,male,7,20110820,20170920",
        "u3,1,27,male,7,20110820,20170920,extra",
        "u4,1,27",
        " ,1,27,male,7,20110820,20170920",
        ",,,,,,",
        "",
        'u5,1,27,"male,7,20110820,20170920',
        'u6,1,27,ma""le,7,20110820,20170920',
        "u7,1,99999999999,male,7,20110820,20170920",
        "u8,1,27,male,7,20110820,20170920\r",
        'u9,1,27,"ma,le",7,20110820,20170920',
    ]
    numbered = spark.createDataFrame(
        [(v, i + 2) for i, v in enumerate(lines)], "value string, line_number long"
    )
    parsed = kkbox.parse_lines(numbered, kkbox.MEMBERS, header).select(
        "line_number", "status", "reason", "raw"
    )
    expected = [
        (2, "ok", None, lines[0]),
        (3, "bad", "bd is not an integer: 'abc'", lines[1]),
        (4, "bad", "expected 7 fields, found 8", lines[2]),
        (5, "bad", "expected 7 fields, found 3", lines[3]),
        (6, "bad", "empty msno", lines[4]),
        (7, "padding", None, lines[5]),
        (8, "padding", None, lines[6]),
        (9, "bad", "unbalanced quote: a quoted field is not closed on this line", lines[7]),
        (10, "bad", "stray quote inside an unquoted field", lines[8]),
        (11, "bad", "bd is not an integer: '99999999999'", lines[9]),
        (12, "ok", None, "u8,1,27,male,7,20110820,20170920"),
        (13, "ok", None, lines[11]),
    ]
    assertDataFrameEqual(
        parsed, spark.createDataFrame(expected, "line_number long, status string, reason string, raw string")
    )

    train = spark.createDataFrame(
        [("u1,s1,a,b,c,2", 2), ("u1,s1,a,b,c,", 3), ("u1,s1,a,b,c, 1 ", 4)], "value string, line_number long"
    )
    got = kkbox.parse_lines(train, kkbox.TRAIN, tuple(TRAIN_HEADER.split(","))).select("reason", "target")
    assertDataFrameEqual(
        got,
        spark.createDataFrame(
            [("target is not 0 or 1: '2'", 2), ("empty target", None), (None, 1)], "reason string, target int"
        ),
    )

    extra = spark.createDataFrame(
        [("x1,name only", 2), ('x2,"a"b,ISRC', 3)], "value string, line_number long"
    )
    got = kkbox.parse_lines(extra, kkbox.SONG_EXTRA, tuple(EXTRA_HEADER.split(",")))
    assertDataFrameEqual(
        got.select("status", "reason", F.when(F.col("status") == "ok", F.col("name")).alias("name")),
        spark.createDataFrame(
            [("bad", "expected 3 fields, found 2", None), ("ok", None, '"a"b')],
            "status string, reason string, name string",
        ),
    )


@pytest.mark.slow
def test_quarantine_keeps_the_rest_and_reruns_are_idempotent(spark, tmp_lake: Config) -> None:
    """A truncated last line, a row with too many fields and a non-numeric bd go to
    quarantine with file, line, raw text and reason; every other row is intact."""
    files = _valid_files()
    files["members.csv"] = _lines(
        MEMBERS_HEADER,
        "u1,1,0,,7,20110820,20170920",
        "u2,1,abc,male,7,20110820,20170920",
        "u3,5,31,male,4,20120101,20170101",
        "u4,1,30,female,7,20110820,20170920,999",
        "u5,22,0,,9,20160101,20170505",
        "u6,4,2",
        last_eol=False,
    )
    _write_raw(tmp_lake, files)

    summary = kkbox.run(spark, tmp_lake)

    assert summary["quarantined"] == {**dict.fromkeys(KKBOX_HEADERS, 0), "members.csv": 3}
    assert summary["rows"]["members"] == 3
    quarantine = [
        ("members.csv", 3, "u2,1,abc,male,7,20110820,20170920", "bd is not an integer: 'abc'"),
        ("members.csv", 5, "u4,1,30,female,7,20110820,20170920,999", "expected 7 fields, found 8"),
        ("members.csv", 7, "u6,4,2", "expected 7 fields, found 3"),
    ]
    got = _bronze(spark, tmp_lake, "quarantine")
    assertDataFrameEqual(
        got.drop("run_id"),
        spark.createDataFrame(quarantine, "file string, line_number long, raw string, reason string"),
    )
    assert {r.run_id for r in got.select("run_id").distinct().collect()} == {summary["run_id"]}
    members = [
        ("u1", 1, 0, None, 7, 20110820, 20170920),
        ("u3", 5, 31, "male", 4, 20120101, 20170101),
        ("u5", 22, 0, None, 9, 20160101, 20170505),
    ]
    assertDataFrameEqual(_bronze(spark, tmp_lake, "members"), spark.createDataFrame(members, schemas.MEMBERS))

    first = {t: _bronze(spark, tmp_lake, t).collect() for t in ("events", "members", "songs", "song_extra")}
    assert "nothing to do" in kkbox.run(spark, tmp_lake)["skipped"]  # same files, same config
    with using_flags(RunFlags(force=True)):  # --force rebuilds
        again = kkbox.run(spark, tmp_lake)
    assert again["rows"] == summary["rows"]
    for table, rows in first.items():
        assertDataFrameEqual(_bronze(spark, tmp_lake, table), rows)
    assertDataFrameEqual(_bronze(spark, tmp_lake, "quarantine").drop("run_id"), got.drop("run_id").collect())
    assert lake.version(lake.table_path(tmp_lake.lake.root, "bronze", "quarantine")) == 1


def test_idx_and_line_numbers_follow_file_order_across_partitions(spark, tmp_lake: Config) -> None:
    """idx = train rows in file order, then test rows; gaps left by rejected and padding
    lines are closed; line numbers stay physical. The files are scanned in many partitions."""
    train = [f"u{i % 7},s{i},my library,Local playlist more,local-library,{i % 2}" for i in range(40)]
    train[11] = "u1,s11,my library,Local playlist more,local-library,x"
    train[25] = ",,,,,"
    test = [f"{i},u{i % 5},t{i},discover,Search,song" for i in range(30)]
    files = _valid_files()
    files["train.csv"] = _lines(TRAIN_HEADER, *train)
    files["test.csv"] = _lines(TEST_HEADER, *test, ",,,,,", ",,,,,")
    _write_raw(tmp_lake, files)
    with tiny_splits(spark):
        assert (
            kkbox.read_lines(spark, str(Path(tmp_lake.data.raw_dir) / "train.csv")).rdd.getNumPartitions() > 5
        )
        summary = kkbox.run(spark, tmp_lake)

    assert (summary["train_rows"], summary["test_rows"]) == (38, 30)
    events = _bronze(spark, tmp_lake, "events").orderBy("idx").select("idx", "song_id", "split").collect()
    train_songs = [f"s{i}" for i in range(40) if i not in (11, 25)]
    expected = [(i, s, "train") for i, s in enumerate(train_songs)]
    expected += [(38 + i, f"t{i}", "test") for i in range(30)]
    assert [tuple(r) for r in events] == expected
    quarantine = _bronze(spark, tmp_lake, "quarantine").select("file", "line_number", "reason").collect()
    assert [tuple(r) for r in quarantine] == [("train.csv", 13, "target is not an integer: 'x'")]


def test_missing_file_names_it(spark, tmp_lake: Config) -> None:
    files = _valid_files()
    del files["songs.csv"]
    raw = _write_raw(tmp_lake, files)
    with pytest.raises(InputError, match=r"input file not found: .*songs\.csv$"):
        kkbox.run(spark, tmp_lake)
    assert not lake.exists(lake.table_path(tmp_lake.lake.root, "bronze", "events"))
    assert (raw / "train.csv").exists()


def test_missing_column_names_file_and_column(spark, tmp_lake: Config) -> None:
    files = _valid_files()
    files["members.csv"] = _lines(
        "msno,city,gender,registered_via,registration_init_time,expiration_date", "u1,1,,7,20110820,20170920"
    )
    _write_raw(tmp_lake, files)
    with pytest.raises(InputError, match=r"members\.csv: missing required column 'bd'") as info:
        kkbox.run(spark, tmp_lake)
    assert "\n" not in str(info.value)
    assert not lake.exists(lake.table_path(tmp_lake.lake.root, "bronze", "events"))


def test_empty_file_is_an_input_error(spark, tmp_lake: Config) -> None:
    files = _valid_files()
    files["test.csv"] = ""
    _write_raw(tmp_lake, files)
    with pytest.raises(InputError, match=r"input file is empty \(no header line\): .*test\.csv"):
        kkbox.run(spark, tmp_lake)


@pytest.mark.skipif(not KKBOX_SAMPLE.is_dir(), reason="KKBOX sample not present")
def test_real_sample(spark, tmp_lake: Config) -> None:
    """The real files: padding rows dropped, the 148 songs a multi-line parser swallows kept,
    literal placeholders, tabs and NBSP kept; tables readable by a foreign Delta reader."""
    cfg = tmp_lake.model_copy(
        update={"data": tmp_lake.data.model_copy(update={"raw_dir": str(KKBOX_SAMPLE)})}
    )

    summary = kkbox.run(spark, cfg)

    assert summary["rows"] == {
        "events": 24998,
        "members": 34403,
        "songs": 39999,
        "song_extra": 40147,
        "quarantine": 0,
    }
    assert (summary["train_rows"], summary["test_rows"]) == (19999, 4999)
    assert summary["padding_rows_dropped"]["test.csv"] == 35000
    tables = {}
    for name, schema in [
        ("events", schemas.EVENTS),
        ("members", schemas.MEMBERS),
        ("songs", schemas.SONGS),
        ("song_extra", schemas.SONG_EXTRA),
        ("quarantine", schemas.QUARANTINE),
    ]:
        tables[name] = DeltaTable(lake.table_path(cfg.lake.root, "bronze", name)).to_pyarrow_table()
        assert tables[name].column_names == schema.fieldNames()
    events = tables["events"].to_pandas().sort_values("idx")
    assert events["idx"].tolist() == list(range(24998))
    assert events["split"].value_counts().to_dict() == {"train": 19999, "test": 4999}
    train = events[events["split"] == "train"]
    assert (train["source_system_tab"] == "null").sum() == 17
    assert (train["source_screen_name"] == "Unknown").sum() == 83
    assert events.loc[events["split"] == "test", "target"].isna().all()
    songs = tables["songs"].to_pandas()
    assert songs["composer"].str.contains("\t", regex=False).sum() == 7
    assert songs["artist_name"].str.contains("\u00a0", regex=False).sum() == 14
    extra = tables["song_extra"].to_pandas()
    assert extra["song_id"].is_unique
    assert extra["name"].str.contains("\n", regex=False).sum() == 0
    assert "apf0rlYNIeHBATR4jliH3PqUngC9d/uH3Um1oCyCUDk=" in set(extra["song_id"])
    members = _bronze(spark, cfg, "members")
    assert members.where(F.col("bd") == 0).count() == 19932
