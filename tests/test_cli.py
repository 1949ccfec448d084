"""The command-line contract: one clear line and a non-zero exit on bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from relisten_spark.cli import COMMANDS, check_java, java_release

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


def test_java_options_printed_before_the_version_are_no_wrong_java(monkeypatch: pytest.MonkeyPatch) -> None:
    """A JVM prints ``Picked up JAVA_TOOL_OPTIONS: ...`` before its version line."""
    monkeypatch.setenv("JAVA_TOOL_OPTIONS", "-Drelisten.test=1")
    check_java()  # the machine's Java 17 or 21, read past the "Picked up" line
    picked = 'Picked up _JAVA_OPTIONS: -Xmx1g\nopenjdk version "21.0.2" 2024-01-16\nOpenJDK Runtime'
    assert java_release(picked) == ("21", 'openjdk version "21.0.2" 2024-01-16')
    assert java_release('java version "1.8.0_402"\n') == ("1", 'java version "1.8.0_402"')
    assert java_release("Error: could not create the VM\n") == ("", "Error: could not create the VM")


def test_pipeline_plan_runs_profile_stages_per_profile() -> None:
    from relisten_spark.cli import plan
    from relisten_spark.config import load_config

    steps = plan("pipeline", load_config(None, ["pipeline.profiles=[serving]", "data.source=kkbox"]))
    names = [stage for stage, _ in steps]
    assert names == [
        "ingest", "features", "train-gbdt", "train-nets", "train-stack", "train-retriever",
        "finetune-retriever", "candidates", "score", "backtest", "evaluate",
    ]  # fmt: skip
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


def _help(*command: str) -> str:
    out = _run("-m", "relisten_spark", *command, "--help")
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_every_command_has_its_own_help() -> None:
    from relisten_spark.cli import DOCS

    texts = {command: _help(command) for command in COMMANDS}
    assert len(set(texts.values())) == len(COMMANDS)  # no two commands share a help text
    for command, text in texts.items():
        doc = DOCS[command]
        assert f"usage: relisten {command}" in text
        for field in ("reads:", "writes:", "config:", "--conf", "--set"):
            assert field in text, (command, field)
        flat = " ".join(text.split())  # the help wraps long lines
        for part in (doc.summary, doc.reads, doc.writes, doc.keys):
            assert " ".join(part.split()) in flat, (command, part)


@pytest.mark.parametrize(
    ("command", "tables"),
    [
        ("ingest", ["bronze.events", "quarantine", "data.raw_dir"]),
        ("features", ["silver.features", "silver.feature_manifest", "silver.label_codes", "features.*"]),
        ("train-gbdt", ["silver.features", "models/lightgbm/", "gold.predictions", "gbdt.*"]),
        ("train-nets", ["models/jenn/", "models/felu_net/", "gold.predictions", "nets.*"]),
        ("train-stack", ["gold.predictions", "models/stack/", "stack.*"]),
        ("evaluate", ["gold.metrics", "report_", "evaluation.*"]),
        ("score", ["gold.recs_story", "gold.recs_shopping", "silver.label_codes", "scoring.*"]),
        ("generate", ["truth.csv", "data.synthetic.*"]),
        ("pipeline", ["pipeline.*"]),
    ],
)
def test_help_names_the_commands_tables_and_keys(command: str, tables: list[str]) -> None:
    text = _help(command)
    for table in tables:
        assert table in text, (command, table)


def test_top_level_help_lists_every_command() -> None:
    text = _help()
    for command in [*COMMANDS, "config"]:
        assert command in text


def test_config_show_prints_the_effective_config_with_descriptions(tmp_path: Path) -> None:
    import yaml

    from relisten_spark.config import Config, load_config

    conf = tmp_path / "c.yaml"
    conf.write_text("scoring:\n  top_n: 7\n")
    overrides = ["data.synthetic.users=123", "scoring.surfaces.story.max_per_artist=4"]
    sets = [arg for kv in overrides for arg in ("--set", kv)]
    out = _run("-m", "relisten_spark", "config", "show", "--conf", str(conf), *sets)
    assert out.returncode == 0, out.stderr
    effective = load_config(conf, overrides)
    assert yaml.safe_load(out.stdout) == effective.model_dump()
    assert effective.scoring.top_n == 7
    assert effective.data.synthetic.users == 123
    for name, field in Config.model_fields.items():
        assert f"{name}:  # {field.description}" in out.stdout
    users = type(effective.data.synthetic).model_fields["users"].description
    assert f"users: 123  # {users}" in out.stdout
    # the output is itself a config file
    again = tmp_path / "shown.yaml"
    again.write_text(out.stdout)
    assert load_config(again) == effective


def test_config_show_reports_a_bad_key_in_one_line() -> None:
    out = _run("-m", "relisten_spark", "config", "show", "--set", "lake.rot=x")
    assert out.returncode == 2
    assert out.stderr.strip() == "relisten config show: error: unknown config key: lake.rot"


def test_version() -> None:
    from importlib.metadata import version

    import relisten_spark

    out = _run("-m", "relisten_spark", "--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"relisten {relisten_spark.__version__}"
    assert relisten_spark.__version__ == version("relisten_spark")


@pytest.mark.parametrize("argv", [["nope"], [], ["ingest", "--bogus"], ["config"]])
def test_usage_errors_are_one_line_and_exit_2(argv: list[str]) -> None:
    out = _run("-m", "relisten_spark", *argv)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("relisten")
    assert "error:" in lines[0]
    assert out.stdout == ""


def test_options_before_the_command_still_work() -> None:
    from relisten_spark.cli import _parser

    args = _parser().parse_args(["--conf", "a.yaml", "--set", "x=1", "ingest", "-v"])
    assert (args.command, args.conf, args.overrides, args.verbose) == ("ingest", "a.yaml", ["x=1"], True)
    args = _parser().parse_args(["score", "--conf", "b.yaml", "--set", "x=1", "--set", "y=2"])
    assert (args.command, args.conf, args.overrides, args.verbose) == (
        "score",
        "b.yaml",
        ["x=1", "y=2"],
        False,
    )


def test_job_files_show_their_commands_help() -> None:
    out = _run("jobs/score.py", "--help")
    assert out.returncode == 0
    assert "usage: relisten score" in out.stdout
    assert "gold.recs_story" in out.stdout
