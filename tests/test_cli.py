"""The command-line contract: one clear line and a non-zero exit on bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from relisten_spark.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, env=env, check=False, timeout=120
    )


@pytest.mark.parametrize("entry", [["-m", "relisten_spark", "ingest"], ["jobs/ingest.py"]])
def test_unknown_key_is_one_line_and_exit_2(entry: list[str]) -> None:
    out = _run(*entry, "--set", "lake.rot=/tmp/x")
    assert out.returncode == 2
    assert out.stderr.strip() == "relisten ingest: error: unknown config key: lake.rot"


def test_missing_config_file_is_named() -> None:
    out = _run("-m", "relisten_spark", "features", "--conf", "conf/nope.yaml")
    assert out.returncode == 2
    assert "config file not found: conf/nope.yaml" in out.stderr


def test_every_command_has_a_job_file() -> None:
    for command in COMMANDS:
        assert (ROOT / "jobs" / f"{command}.py").is_file(), command


def test_missing_java_is_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path), "JAVA_HOME": ""}
    out = _run("-m", "relisten_spark", "ingest", "--set", f"lake.root={tmp_path}", env=env)
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1
    assert "Java not found: install Java 17" in out.stderr


def test_pipeline_plan_runs_profile_stages_per_profile() -> None:
    from relisten_spark.cli import plan
    from relisten_spark.config import load_config

    steps = plan("pipeline", load_config(None, ["pipeline.profiles=[serving]", "data.source=kkbox"]))
    names = [stage for stage, _ in steps]
    assert names == ["ingest", "features", "train-gbdt", "train-nets", "train-stack", "evaluate", "score"]
    by_stage = dict(steps)
    assert by_stage["features"].features.profile == "serving"
    assert by_stage["train-gbdt"].gbdt.profile == "serving"
    assert by_stage["train-stack"].stack.profile == "serving"

    both = plan("pipeline", load_config(None))
    assert [c.gbdt.profile for s, c in both if s == "train-gbdt"] == ["full", "serving"]
    assert both[0][0] == "generate"


def test_the_summary_ends_with_the_report_and_the_tables() -> None:
    from relisten_spark.cli import format_summary

    results = [
        ("evaluate", {"run_id": "e1", "report": "lake/reports/e1.html"}, 2.0),
        ("score", {"tables": {"gold.recs_story": "lake/gold/recs_story (version 3)"}}, 5.0),
    ]
    assert format_summary(results).splitlines()[-3:] == [
        "== total 7.0 s",
        "report: lake/reports/e1.html",
        "gold.recs_story: lake/gold/recs_story (version 3)",
    ]
