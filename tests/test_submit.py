"""spark-submit from the venv without activating it (`make submit`), quiet: Spark's JVM logs at
WARN through conf/log4j2.properties, for the jobs and for the CLI's own session."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path

import pytest

from relisten_spark.config import load_config
from relisten_spark.data.synthetic import generator
from relisten_spark.runtime import PhaseTimer, heartbeat
from relisten_spark.session import DATAFRAME_DEBUGGING, LOCAL_PAGE_SIZE

ROOT = Path(__file__).resolve().parents[1]
LOG4J = ROOT / "conf" / "log4j2.properties"


def test_log4j2_keeps_spark_at_warn() -> None:
    settings = dict(
        line.split("=", 1)
        for line in LOG4J.read_text(encoding="utf-8").splitlines()
        if "=" in line and line[0] != "#"
    )
    settings = {k.strip(): v.strip() for k, v in settings.items()}
    assert settings["rootLogger.level"] == "warn"
    assert settings["logger.relisten.level"] == "info"


@pytest.mark.spark
def test_the_local_session_uses_the_log4j2_file(spark) -> None:
    options = spark.sparkContext.getConf().get("spark.driver.extraJavaOptions", "")
    assert f"-Dlog4j2.configurationFile={LOG4J}" in options


@pytest.mark.spark
def test_the_local_jvm_compiles_huge_generated_methods(spark) -> None:
    """Wide projections generate methods over the JIT's 8,000-bytecode limit; the flag is on the
    running JVM, not only in the conf."""
    jvm = spark.sparkContext._jvm
    arguments = list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    assert "-XX:-DontCompileHugeMethods" in arguments


@pytest.mark.spark
def test_the_local_memory_manager_hands_out_small_pages(spark) -> None:
    """Every sort, aggregation and join buffer of a task holds at least a page: the running
    memory manager uses LOCAL_PAGE_SIZE, not the 16-64 MB Spark derives from the heap."""
    manager = spark.sparkContext._jsc.sc().env().memoryManager()
    assert LOCAL_PAGE_SIZE == "4m"
    assert manager.pageSizeBytes() == 4 * 2**20


@pytest.mark.spark
def test_the_session_skips_pyspark_call_site_capture(spark) -> None:
    """PySpark's DataFrame debugging costs py4j round trips on every Column call; the session
    turns it off before the first one, and PySpark keeps the value it read then."""
    from pyspark.errors.utils import is_debugging_enabled

    assert spark.conf.get(DATAFRAME_DEBUGGING) == "false"
    assert is_debugging_enabled() is False


def _plain_env() -> dict[str, str]:
    """The environment of a shell where the venv was never activated."""
    venv_bin = str(ROOT / ".venv" / "bin")
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p != venv_bin]
    drop = {"VIRTUAL_ENV", "SPARK_HOME", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "PYTHONPATH"}
    return {**{k: v for k, v in os.environ.items() if k not in drop}, "PATH": os.pathsep.join(path)}


@pytest.mark.slow
@pytest.mark.spark
def test_spark_submit_runs_a_job_without_activating_the_venv_and_quietly(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    sizes = ["data.synthetic.users=40", "data.synthetic.songs=120", "data.synthetic.events=600"]
    generator.run(load_config(None, [f"data.raw_dir={raw}", *sizes]))
    args = [
        "--set",
        f"lake.root={tmp_path / 'lake'}",
        "--set",
        f"data.raw_dir={raw}",
        "--set",
        "spark.master=local[2]",
    ]
    done = subprocess.run(  # the venv's spark-submit, the venv not activated (make install prepared it)
        [str(ROOT / ".venv" / "bin" / "spark-submit"), "jobs/ingest.py", "--conf", "conf/local.yaml", *args],
        cwd=ROOT,
        env=_plain_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    lines = (done.stderr + done.stdout).splitlines()
    assert done.returncode == 0, "\n".join(lines[-20:])
    first = next(i for i, line in enumerate(lines) if "stage ingest: starting" in line)
    assert first < 10, "\n".join(lines[:first])  # what Spark printed before the stage's own lines
    assert (tmp_path / "lake" / "bronze" / "events" / "_delta_log").is_dir()


def test_a_long_stage_logs_a_heartbeat_with_its_phase(caplog) -> None:
    timer = PhaseTimer("demo")
    with (
        caplog.at_level(logging.INFO, logger="relisten_spark.runtime"),
        heartbeat("stage demo", every_s=0.05),
        timer.phase("load"),
    ):
        time.sleep(0.3)
    beats = [r.getMessage() for r in caplog.records if "running for" in r.getMessage()]
    assert beats
    assert "in demo: load for" in beats[-1]
    count = len(beats)
    time.sleep(0.15)
    assert (
        len([r for r in caplog.records if "running for" in r.getMessage()]) == count
    )  # stopped with the block
