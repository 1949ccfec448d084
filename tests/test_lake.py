"""The Delta layer: every write mode, atomicity, partitions, schema checks, foreign readers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from relisten_spark import lake, lake_files
from relisten_spark.errors import LakeError

pytestmark = pytest.mark.spark

SCHEMA = "id long, day string, score double, at timestamp"


def _rows(spark, ids, day):
    from datetime import UTC, datetime

    at = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    return spark.createDataFrame([(i, day, i / 10, at) for i in ids], SCHEMA)


def test_overwrite_append_and_read(spark, tmp_path: Path) -> None:
    path = str(tmp_path / "t")
    assert lake.write(spark, _rows(spark, [1, 2], "d1"), path) == 0
    assert lake.write(spark, _rows(spark, [3], "d1"), path, mode="append") == 1
    assert sorted(r.id for r in lake.read(spark, path).collect()) == [1, 2, 3]
    assert lake.write(spark, _rows(spark, [9], "d2"), path) == 2
    assertDataFrameEqual(lake.read(spark, path), _rows(spark, [9], "d2"))
    assert lake.version(path) == 2
    assert len(lake.history(path)) == 3


def test_reads_current_files_not_the_folder(spark, tmp_path: Path) -> None:
    path = str(tmp_path / "t")
    lake.write(spark, _rows(spark, range(50), "d1"), path)
    lake.write(spark, _rows(spark, [1], "d1"), path)
    on_disk = [f for _, _, fs in os.walk(path) for f in fs if f.endswith(".parquet")]
    assert len(on_disk) > len(lake.file_uris(path))  # removed files are still on disk
    assert lake.read(spark, path).count() == 1


def test_replace_where_keeps_other_partitions(spark, tmp_path: Path) -> None:
    path = str(tmp_path / "t")
    lake.write(
        spark, _rows(spark, [1, 2], "d1").unionByName(_rows(spark, [3], "d2")), path, partition_by=["day"]
    )
    lake.write(spark, _rows(spark, [7, 8, 9], "d2"), path, partition_by=["day"], replace_where={"day": "d2"})
    got = {(r.day, r.id) for r in lake.read(spark, path).collect()}
    assert got == {("d1", 1), ("d1", 2), ("d2", 7), ("d2", 8), ("d2", 9)}
    assert lake.read(spark, path, where={"day": "d1"}).count() == 2


def test_replace_where_rejects_rows_of_other_partitions(spark, tmp_path: Path) -> None:
    path = str(tmp_path / "t")
    lake.write(spark, _rows(spark, [1], "d1"), path, partition_by=["day"])
    with pytest.raises(Exception, match="row outside replace_where"):
        lake.write(spark, _rows(spark, [2], "d9"), path, partition_by=["day"], replace_where={"day": "d1"})
    assert [r.id for r in lake.read(spark, path).collect()] == [1]


def test_failed_write_leaves_previous_version(spark, tmp_path: Path) -> None:
    path = str(tmp_path / "t")
    lake.write(spark, _rows(spark, range(10), "d1"), path)
    before = lake.version(path)
    boom = (
        _rows(spark, range(1000), "d1")
        .repartition(4)
        .withColumn(
            "score",
            F.when(F.col("id") == 777, F.raise_error(F.lit("boom in task"))).otherwise(F.col("score")),
        )
    )
    with pytest.raises(Exception, match="boom in task"):
        lake.write(spark, boom, path)
    assert lake.version(path) == before
    assertDataFrameEqual(lake.read(spark, path), _rows(spark, range(10), "d1"))
    assert not os.path.exists(os.path.join(path, "_staging")) or not os.listdir(
        os.path.join(path, "_staging")
    )


def test_replace_where_merges_a_grown_catalogue(spark, tmp_path: Path) -> None:
    """A catalogue change (new feature columns) rewrites one profile partition of an existing
    table: the new columns join the schema, the other partition reads them as null."""
    path = str(tmp_path / "t")
    lake.write(spark, _rows(spark, [1, 2], "full"), path, partition_by=["day"])
    wider = _rows(spark, [3], "serving").withColumn("f_new", F.lit(0.5))
    lake.write(spark, wider, path, partition_by=["day"], replace_where={"day": "serving"})
    got = {(r.day, r.id, r.f_new) for r in lake.read(spark, path).collect()}
    assert got == {("full", 1, None), ("full", 2, None), ("serving", 3, 0.5)}
    widest = _rows(spark, [4], "full").withColumn("f_new", F.lit(1.5)).withColumn("g_new", F.lit(7))
    lake.write(spark, widest, path, partition_by=["day"], mode="append")  # an append adds columns too
    assert lake.read(spark, path).columns == ["id", "day", "score", "at", "f_new", "g_new"]
    assert lake.read(spark, path).where("id = 4").first().g_new == 7


def test_removed_or_retyped_column_is_one_clear_line(spark, tmp_path: Path) -> None:
    path = str(tmp_path / "t")
    lake.write(spark, _rows(spark, [1], "d1"), path, partition_by=["day"])
    changes = {
        r"removed columns \['score'\]": _rows(spark, [2], "d1").drop("score"),
        r"retyped columns score: double -> string": _rows(spark, [2], "d1").withColumn(
            "score", F.col("score").cast("string")
        ),
    }
    for message, frame in changes.items():
        with pytest.raises(LakeError, match=message) as caught:
            lake.write(spark, frame, path, partition_by=["day"], replace_where={"day": "d1"})
        assert "move" in str(caught.value)
        assert "rerun the stage to rebuild it" in str(caught.value)
        assert "\n" not in str(caught.value)
    assert lake.version(path) == 0


def test_readable_by_deltalake_at_protocol_1_2(spark, tmp_path: Path) -> None:
    path = str(tmp_path / "t")
    lake.write(spark, _rows(spark, [1, 2, 3], "d1"), path, partition_by=["day"])
    table = DeltaTable(path)
    assert (table.protocol().min_reader_version, table.protocol().min_writer_version) == (1, 2)
    arrow = table.to_pyarrow_table()
    assert sorted(arrow.column("id").to_pylist()) == [1, 2, 3]
    assert str(arrow.schema.field("at").type) == "timestamp[us, tz=UTC]"
    stats = pa.table(table.get_add_actions(flatten=True)).to_pydict()
    assert sum(stats["num_records"]) == 3


def test_missing_table_is_clear(spark, tmp_path: Path) -> None:
    with pytest.raises(LakeError, match="no Delta table at"):
        lake.read(spark, str(tmp_path / "absent"))


def test_remote_root_without_delta_extension_is_clear(spark) -> None:
    with pytest.raises(LakeError, match="without the Delta Spark extension"):
        lake.write(spark, spark.range(1), "s3://bucket/t")


def test_wide_table_options_keep_statistics_and_dictionaries_on_the_keys_only(spark, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    df = spark.range(2000).select(
        F.col("id").alias("idx"),
        (F.col("id") % 7).cast("string").alias("msno"),
        *[(F.col("id") * 0.5 + i).alias(f"f{i}") for i in range(3)],
    )
    path = str(tmp_path / "wide")
    lake.write(spark, df.coalesce(1), path, options=lake.wide_table_options(["idx", "msno"], ["msno"]))
    assertDataFrameEqual(lake.read(spark, path), df)
    (file,) = DeltaTable(path).file_uris()
    meta = pq.read_metadata(file.removeprefix("file://")).row_group(0)
    columns = {meta.column(i).path_in_schema: meta.column(i) for i in range(meta.num_columns)}
    assert columns["idx"].statistics is not None
    assert columns["idx"].statistics.has_min_max
    assert columns["f0"].statistics is None or not columns["f0"].statistics.has_min_max
    assert "RLE_DICTIONARY" in columns["msno"].encodings or "PLAIN_DICTIONARY" in columns["msno"].encodings
    assert not {"RLE_DICTIONARY", "PLAIN_DICTIONARY"} & set(columns["f0"].encodings)
    assert columns["f0"].compression == "ZSTD"
    stats = pa.table(DeltaTable(path).get_add_actions(flatten=True)).to_pydict()
    assert stats["min.idx"] == [0]
    assert stats["max.idx"] == [1999]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_next_write_removes_dead_writers_staging(spark, tmp_path: Path) -> None:
    """A killed write leaves 0-byte part files under <table>/_staging/<id>/_temporary/ (a plain
    Parquet reader of the folder fails on them); the next write of the table removes them, and
    leaves a live writer's staging folder alone."""
    path = tmp_path / "t"
    lake.write(spark, _rows(spark, [1], "d1"), str(path))
    host = lake_files.new_write_id().split("-")[1]
    dead = path / "_staging" / f"20260101T000000-{host}-{_dead_pid()}-deadbeef"
    live = path / "_staging" / f"20260101T000000-{host}-{os.getpid()}-0000beef"
    for folder in (dead, live):
        (folder / "_temporary" / "0").mkdir(parents=True)
        (folder / "_temporary" / "0" / "part-00000.parquet").write_bytes(b"")
    with pytest.raises(Exception, match=r"(?i)parquet"):
        spark.read.parquet(str(dead)).collect()
    lake.write(spark, _rows(spark, [2], "d1"), str(path))
    assert not dead.exists()
    assert live.exists()
    assert [r.id for r in lake.read(spark, str(path)).collect()] == [2]


def test_a_stage_runs_version_is_invisible_until_its_commit_row(spark, tmp_path: Path) -> None:
    path = str(tmp_path / "bronze" / "t")
    lake.write(spark, _rows(spark, [1], "d1"), path)
    lake.write(spark, _rows(spark, [2], "d1"), path, metadata={lake.STAGE_RUN_KEY: "ingest-x"})
    assert lake.committed_version(path) == 0
    assert [r.id for r in lake.read(spark, path).collect()] == [1]
    assert [r.id for r in lake.read(spark, path, at=1).collect()] == [2]
    commits = spark.createDataFrame([("ingest-x",)], "stage_run_id string")
    lake.write(spark, commits, lake.commits_path(path), mode="append")
    assert lake.committed_version(path) == 1
    assert [r.id for r in lake.read(spark, path).collect()] == [2]


def test_write_conflict_on_the_same_partition_and_none_on_another(spark, tmp_path: Path) -> None:
    path = str(tmp_path / "t")
    lake.write(
        spark, _rows(spark, [1], "d1").unionByName(_rows(spark, [2], "d2")), path, partition_by=["day"]
    )
    since = lake.version(path)
    slow = lake.prepare(
        spark, _rows(spark, [10], "d1"), path, partition_by=["day"], replace_where={"day": "d1"}, since=since
    )
    lake.write(
        spark,
        _rows(spark, [11], "d1"),
        path,
        partition_by=["day"],
        replace_where={"day": "d1"},
        metadata={lake.STAGE_RUN_KEY: "score-winner"},
    )
    with pytest.raises(
        lake.WriteConflictError, match=r"partition \{'day': 'd1'\}: run score-winner committed version 1"
    ):
        slow.commit()
    other = lake.prepare(
        spark, _rows(spark, [20], "d2"), path, partition_by=["day"], replace_where={"day": "d2"}, since=since
    )
    assert other.commit() == 2
    assert sorted((r.day, r.id) for r in lake.read(spark, path, at=2).collect()) == [("d1", 11), ("d2", 20)]
    assert not (tmp_path / "t" / "_staging").exists()
