"""Cluster-safe persistence: library code materialises frames only through runtime.checkpoint
(reliable off a local master), and the ranking's per-user clustering is recomputed, never
read back from a checkpoint. The slow test runs both on local-cluster[2,1,1024] and kills an
executor mid-stage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from relisten_spark import runtime
from relisten_spark.scoring.rank import cluster_by_user

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "relisten_spark"
RUNS_SCHEMA = "part int, msno string, rows long"
USERS, SONGS, PER_USER = 40, 25, 12


def test_library_code_has_no_local_checkpoint() -> None:
    """localCheckpoint is lost with its executor: only runtime.checkpoint may call it."""
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "runtime.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "localCheckpoint(" in line
    ]
    assert offenders == []


def narrow_pairs(spark: SparkSession) -> DataFrame:
    """``[msno, song_id]``, every user's rows spread over 4 input partitions in random order.
    Built from ``spark.range``, not local rows, so that a ``Scan ExistingRDD`` in a plan can only
    be a checkpoint."""
    pair = F.col("id")
    user, k = (pair / PER_USER).cast("int"), pair % PER_USER
    return (
        spark.range(USERS * PER_USER)
        .select(
            F.format_string("u%02d", user).alias("msno"),
            F.format_string("s%02d", (user * 7 + k) % SONGS).alias("song_id"),
        )
        .orderBy(F.rand(3))
        .repartition(4)
    )


def widened(spark: SparkSession, pairs: DataFrame) -> DataFrame:
    """``pairs`` shuffled by user while narrow, then widened by broadcast joins, then clustered
    (the order snapshot.pair_features uses)."""
    users = spark.range(USERS).select(
        F.format_string("u%02d", F.col("id")).alias("msno"), F.col("id").cast("double").alias("age")
    )
    songs = spark.range(SONGS).select(
        F.format_string("s%02d", F.col("id")).alias("song_id"), (F.col("id") * 10).alias("length")
    )
    wide = pairs.repartition("msno").join(F.broadcast(users), "msno", "left")
    wide = wide.join(F.broadcast(songs), "song_id", "left").withColumn("pad", F.repeat(F.lit("x"), 200))
    return cluster_by_user(wide)


def user_runs(delay: float = 0.0) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """A mapInArrow function: one row per run of consecutive rows of one user in a task,
    ``[part, msno, rows]``. A closure, so it travels to the Python workers by value (they cannot
    import a test module)."""

    def runs(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        part = TaskContext.get().partitionId()  # type: ignore[union-attr]
        current, count, out = None, 0, []
        for batch in batches:
            time.sleep(delay)
            for user in batch.column("msno").to_pylist():
                if user != current and count:
                    out.append((current, count))
                    count = 0
                current, count = user, count + 1
        if count:
            out.append((current, count))
        yield pa.RecordBatch.from_pydict(
            {"part": [part] * len(out), "msno": [u for u, _ in out], "rows": [n for _, n in out]},
            schema=pa.schema([("part", pa.int32()), ("msno", pa.string()), ("rows", pa.int64())]),
        )

    return runs


def check_runs(runs: list[tuple[str, int]]) -> None:
    """Every user in exactly one run holding all of their rows."""
    assert sorted(runs) == [(f"u{u:02d}", PER_USER) for u in range(USERS)]


@pytest.mark.spark
def test_clustering_is_recomputed_not_checkpointed_and_shuffles_narrow_rows_once(spark) -> None:
    clustered = widened(spark, narrow_pairs(spark))
    clustered.collect()  # the adaptive plan is final after a run
    plan = clustered._jdf.queryExecution().executedPlan().toString().split("== Initial Plan ==")[0]
    assert "ExistingRDD" not in plan  # no checkpoint: a lost task recomputes its users
    shuffles = [line for line in plan.splitlines() if "Exchange hashpartitioning(msno" in line]
    assert len(shuffles) == 1  # the narrow pairs only: the repartition of the wide rows is dropped
    runs = clustered.select("msno").mapInArrow(user_runs(), RUNS_SCHEMA).collect()
    check_runs([(r["msno"], r["rows"]) for r in runs])


# ---- local-cluster: an executor killed mid-stage ---------------------------------------------


def _executor_pids(app_id: str) -> list[int]:
    """The executor JVMs of application ``app_id`` (this test's own processes)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if (
                b"org.apache.spark.executor.CoarseGrainedExecutorBackend" in cmdline
                and app_id.encode() in cmdline
            ):
                pids.append(int(entry.name))
    return sorted(pids)


def _kill_one_executor_when_running(spark: SparkSession, killed: list[int]) -> None:
    """Once a stage has run tasks for over a second (the slow ranking-like stage, after the
    narrow shuffle wrote its output), SIGKILL one executor."""
    tracker = spark.sparkContext.statusTracker()
    seen: dict[int, float] = {}  # stage id -> when this thread first saw it run tasks
    deadline = time.time() + 120
    while time.time() < deadline:
        for stage in filter(None, map(tracker.getStageInfo, tracker.getActiveStageIds())):
            if stage.numActiveTasks > 0:
                seen.setdefault(stage.stageId, time.time())
        if any(time.time() - since > 1.0 for since in seen.values()):
            pid = _executor_pids(spark.sparkContext.applicationId)[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.2)


def cluster_job(lake_root: str) -> dict[str, object]:
    """Run in a child process: a reliable checkpoint and the clustering, each with an executor
    killed after it started; the same frames through localCheckpoint for contrast."""
    import pyspark

    os.environ.setdefault("SPARK_HOME", os.path.dirname(pyspark.__file__))
    spark = (
        SparkSession.builder.master("local-cluster[2,1,1024]")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "20")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("OFF")
    runtime.use_checkpoint_dir(spark, lake_root)
    result: dict[str, object] = {"checkpoint_dir": spark.sparkContext.getCheckpointDir()}
    frame = spark.range(0, 2000, numPartitions=4).withColumn("x", F.col("id") * 2)
    reliable, local = runtime.checkpoint(frame), frame.localCheckpoint(eager=True)
    os.kill(_executor_pids(spark.sparkContext.applicationId)[0], signal.SIGKILL)
    result["reliable_sum"] = reliable.agg(F.sum("x")).first()[0]  # type: ignore[index]
    try:
        local.agg(F.sum("x")).collect()
        result["local"] = "survived"
    except Exception as exc:
        result["local"] = (
            "CHECKPOINT_RDD_BLOCK_ID_NOT_FOUND"
            if "CHECKPOINT_RDD_BLOCK_ID_NOT_FOUND" in str(exc)
            else str(exc)[:200]
        )

    killed: list[int] = []
    killer = threading.Thread(target=_kill_one_executor_when_running, args=(spark, killed))
    killer.start()
    clustered = widened(spark, narrow_pairs(spark)).select("msno")
    runs = clustered.mapInArrow(user_runs(delay=0.3), RUNS_SCHEMA).collect()
    killer.join()
    result["killed_mid_stage"] = len(killed)
    result["runs"] = [(r["msno"], r["rows"]) for r in runs]
    spark.stop()
    return result


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the executor JVMs to kill through /proc")
def test_an_executor_lost_on_local_cluster(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, __file__, str(tmp_path / "lake")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=400,
        env={**os.environ, "PYSPARK_PYTHON": sys.executable},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert str(result["checkpoint_dir"]).startswith(f"file:{tmp_path / 'lake' / runtime.CHECKPOINTS}")
    assert result["reliable_sum"] == 2 * sum(range(2000))
    assert result["local"] == "CHECKPOINT_RDD_BLOCK_ID_NOT_FOUND"  # what the old code risked
    assert result["killed_mid_stage"] == 1
    check_runs([tuple(r) for r in result["runs"]])


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    print(json.dumps(cluster_job(sys.argv[1])))
