"""Housekeeping: ``relisten vacuum`` (and vacuum after a stage), no-op reruns and ``--force``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from relisten_spark import cli, commits, lake
from relisten_spark.config import Config, load_config
from relisten_spark.data import kkbox
from relisten_spark.runs import RunFlags, runs_path, using_flags

pytestmark = pytest.mark.spark


def _parquet(folder: Path) -> set[str]:
    return {f for _, _, files in os.walk(folder) for f in files if f.endswith(".parquet")}


def _three_versions(spark, path: str) -> None:
    for i in range(3):
        lake.write(spark, spark.range(i, i + 1).coalesce(1), path)


def test_vacuum_command_lists_with_dry_run_then_deletes(spark, tmp_lake: Config, capsys) -> None:
    path = lake.table_path(tmp_lake.lake.root, "silver", "t")
    _three_versions(spark, path)
    orphan = Path(path) / "part-of-a-killed-write.parquet"  # placed, never committed
    orphan.write_bytes(b"")
    keys = ["--set", f"lake.root={tmp_lake.lake.root}", "--set", "lake.retention_hours=0"]
    before = _parquet(Path(path))
    assert cli.main(["vacuum", "--dry-run", *keys]) == 0
    out = capsys.readouterr().out
    assert "dry_run: True" in out
    assert "files: 3" in out  # versions 0 and 1, and the orphan
    assert orphan.name in out
    assert _parquet(Path(path)) == before  # listed, not deleted
    assert cli.main(["vacuum", *keys]) == 0
    assert "deleted" in capsys.readouterr().out
    assert len(_parquet(Path(path))) == 1
    assert [r.id for r in lake.read(spark, path).collect()] == [2]
    assert cli.main(["vacuum", "--set", f"lake.root={tmp_lake.lake.root}"]) == 0  # default: a week
    assert "files: 0" in capsys.readouterr().out


def test_vacuum_after_write_keeps_only_the_committed_files(spark, tmp_path: Path) -> None:
    cfg = load_config(
        None, [f"lake.root={tmp_path}", "lake.vacuum_after_write=true", "lake.retention_hours=0"]
    )
    for i in range(2):
        with commits.StageRun(spark, cfg, "gold", "score", ["t"]) as out:
            out.prepare("t", spark.range(i, i + 1).coalesce(1))
            out.commit()
    path = lake.table_path(str(tmp_path), "gold", "t")
    assert _parquet(Path(path)) == {u.rsplit("/", 1)[-1] for u in lake.file_uris(path)}
    assert [r.id for r in lake.read(spark, path).collect()] == [1]


def test_unchanged_inputs_and_config_are_a_no_op_unless_forced(spark, tmp_lake: Config) -> None:
    def stage_run(cfg: Config, inputs: dict[str, str]) -> commits.StageRun:
        return commits.StageRun(spark, cfg, "silver", "features", ["t"], scope="profile=full", inputs=inputs)

    with stage_run(tmp_lake, {"bronze.events": "3"}) as first:
        first.prepare("t", spark.range(1).selectExpr("'full' AS profile", "id"), partition_by=["profile"])
        first.commit()
    message = stage_run(tmp_lake, {"bronze.events": "3"}).unchanged()
    assert (
        message == f"nothing to do: inputs and config unchanged since run {first.run_id} (--force rebuilds)"
    )
    assert stage_run(tmp_lake, {"bronze.events": "4"}).unchanged() is None  # a new input version
    changed = load_config(None, [f"lake.root={tmp_lake.lake.root}", "scoring.top_n=7"])
    assert stage_run(changed, {"bronze.events": "3"}).unchanged() is None  # another config
    with using_flags(RunFlags(force=True)):
        assert stage_run(tmp_lake, {"bronze.events": "3"}).unchanged() is None


def _raw(cfg: Config) -> None:
    raw = Path(cfg.data.raw_dir)
    raw.mkdir(parents=True)
    files = {
        "train.csv": "msno,song_id,source_system_tab,source_screen_name,source_type,target\nu1,s1,a,b,c,1\n",
        "test.csv": "id,msno,song_id,source_system_tab,source_screen_name,source_type\n0,u1,s1,a,b,c\n",
        "members.csv": "msno,city,bd,gender,registered_via,registration_init_time,expiration_date\n"
        "u1,1,0,,7,20110820,20170920\n",
        "songs.csv": "song_id,song_length,genre_ids,artist_name,composer,lyricist,language\ns1,1,2,A,B,,3\n",
        "song_extra_info.csv": "song_id,name,isrc\ns1,Song,TWUM71200043\n",
    }
    for name, text in files.items():
        (raw / name).write_text(text)


@pytest.mark.slow
def test_ingest_rerun_on_the_same_files_is_a_no_op_that_says_so(spark, tmp_lake: Config, capsys) -> None:
    _raw(tmp_lake)
    keys = [f"--set=lake.root={tmp_lake.lake.root}", f"--set=data.raw_dir={tmp_lake.data.raw_dir}"]
    events = lake.table_path(tmp_lake.lake.root, "bronze", "events")
    assert cli.main(["ingest", *keys]) == 0
    assert lake.version(events) == 0
    assert cli.main(["ingest", *keys]) == 0
    assert "skipped: nothing to do: inputs and config unchanged since run ingest-" in capsys.readouterr().out
    assert lake.version(events) == 0
    assert cli.main(["ingest", "--force", *keys]) == 0
    assert lake.version(events) == 1
    (Path(tmp_lake.data.raw_dir) / "members.csv").write_text(
        "msno,city,bd,gender,registered_via,registration_init_time,expiration_date\nu1,2,0,,7,20110820,20170920\n"
    )
    assert kkbox.run(spark, tmp_lake).get("skipped") is None  # a changed file is read again
    statuses = [r.status for r in lake.read(spark, runs_path(tmp_lake)).orderBy("started_at").collect()]
    assert statuses == ["succeeded", "skipped", "succeeded"]
