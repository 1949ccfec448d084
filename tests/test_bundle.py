"""The Databricks Asset Bundle (databricks.yml + resources/*.yml) runs what the package has: every
task's wheel entry point is the package's console script, its command is a CLI command, and its
parameters parse with the CLI and load as a valid config (every ``--set`` key exists and types),
in every target."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from relisten_spark import cli
from relisten_spark.config import load_config

ROOT = Path(__file__).resolve().parents[1]
RUN_DATE = "2026-11-23"  # what {{job.start_time.iso_date}} becomes at run time
GPU_COMMANDS = {"train-nets", "train-retriever", "finetune-retriever"}


def _bundle() -> dict[str, Any]:
    bundle = yaml.safe_load((ROOT / "databricks.yml").read_text(encoding="utf-8"))
    jobs: dict[str, Any] = {}
    for pattern in bundle["include"]:
        for path in sorted(ROOT.glob(pattern)):
            jobs.update(yaml.safe_load(path.read_text(encoding="utf-8"))["resources"]["jobs"])
    bundle["jobs"] = jobs
    return bundle


def _console_scripts() -> dict[str, str]:
    """``{name: module:function}`` of setup.py's console_scripts."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "entry_points":
            scripts = ast.literal_eval(node.value)["console_scripts"]
            return dict(s.replace(" ", "").split("=", 1) for s in scripts)
    raise AssertionError("setup.py declares no entry_points")


def _variables(bundle: dict[str, Any], target: str) -> dict[str, str]:
    values = {
        name: str(v.get("default", f"<{name} looked up at deploy>"))
        for name, v in bundle["variables"].items()
    }
    values.update({k: str(v) for k, v in (bundle["targets"][target].get("variables") or {}).items()})
    return values


def _resolve(text: str, variables: dict[str, str], target: str) -> str:
    """The bundle's ``${...}`` references and the job's ``{{...}}`` values, as deploy and run
    would put them; ``${workspace.file_path}`` is where the repository's files are synced."""

    def ref(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("var."):
            assert name[4:] in variables, f"undeclared variable {name}"
            return variables[name[4:]]
        known = {"workspace.file_path": str(ROOT), "bundle.target": target, "bundle.name": "relisten_spark"}
        assert name in known, f"unknown reference ${{{name}}}"
        return known[name]

    text = re.sub(r"\$\{([^}]+)\}", ref, text)
    return text.replace("{{job.start_time.iso_date}}", RUN_DATE)


def _tasks() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    bundle = _bundle()
    return [(name, job, task) for name, job in bundle["jobs"].items() for task in job["tasks"]]


def test_the_wheel_is_the_artifact_that_make_wheel_builds() -> None:
    bundle = _bundle()
    [artifact] = bundle["artifacts"].values()
    assert artifact["type"] == "whl"
    assert artifact["build"] == "make wheel"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^wheel:.*\n\t.*pip wheel .*--wheel-dir dist", makefile, flags=re.M)
    assert set(bundle["targets"]) == {"dev", "prod"}


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_every_task_runs_a_cli_command_with_a_valid_config(target: str) -> None:
    bundle = _bundle()
    variables = _variables(bundle, target)
    scripts = _console_scripts()
    parser = cli._parser()
    for job_name, job, task in _tasks():
        where = f"{job_name}.{task['task_key']}"
        wheel_task = task["python_wheel_task"]
        assert wheel_task["package_name"] == "relisten_spark", where
        assert scripts.get(wheel_task["entry_point"]) == "relisten_spark.cli:main", where
        assert task["libraries"] == [{"whl": "../dist/*.whl"}], where  # resources/ -> the wheel
        params = [_resolve(str(p), variables, target) for p in wheel_task["parameters"]]
        args = parser.parse_args(params)
        assert args.command in cli.STAGES, where
        cfg = load_config(args.conf, args.overrides)  # unknown keys and wrong types raise
        assert cfg.lake.root == variables["lake_root"], where
        assert cfg.models.root == variables["models_root"], where
        clusters = {c["job_cluster_key"] for c in job["job_clusters"]}
        assert task["job_cluster_key"] in clusters, where
        assert (task["job_cluster_key"] == "gpu") == (args.command in GPU_COMMANDS), where
        keys = {t["task_key"] for t in job["tasks"]}
        assert {d["task_key"] for d in task.get("depends_on", [])} <= keys, where


def _chain(job: dict[str, Any]) -> list[str]:
    """The job's commands in dependency order (each task depends on the one before)."""
    tasks = {t["task_key"]: t for t in job["tasks"]}
    [first] = [t for t in job["tasks"] if not t.get("depends_on")]
    order = [first]
    while nxt := [
        t
        for t in tasks.values()
        if [d["task_key"] for d in t.get("depends_on", [])] == [order[-1]["task_key"]]
    ]:
        order.append(nxt[0])
    assert len(order) == len(tasks)
    return [t["python_wheel_task"]["parameters"][0] for t in order]


def test_the_jobs_chain_the_stages_in_order() -> None:
    jobs = _bundle()["jobs"]
    assert _chain(jobs["relisten_nightly"]) == ["ingest", "features", "score"]
    assert _chain(jobs["relisten_weekly"]) == [
        "features",
        "features",
        "train-gbdt",
        "train-nets",
        "train-stack",
        "evaluate",
        "train-retriever",
        "finetune-retriever",
        "candidates",
    ]
    gpu = next(c for c in jobs["relisten_weekly"]["job_clusters"] if c["job_cluster_key"] == "gpu")
    assert gpu["new_cluster"]["instance_pool_id"] == "${var.gpu_pool_id}"
