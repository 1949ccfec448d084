"""The Databricks notebooks (notebooks/NN_*.py, Databricks source format): a %pip cell for this
version's wheel, typed widgets whose choices are the config's, calls of functions the package
has, and a body that runs against the local session on tiny data. ``dbutils``, ``display`` and
``displayHTML`` (the Databricks runtime's objects, not the engine's) are the only stand-ins."""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import re
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from relisten_spark import cli, notebook
from relisten_spark.config import Profile, ScoringConfig, load_config
from relisten_spark.data.synthetic import generator

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
HEADER = "# Databricks notebook source\n"
SEPARATOR = "\n# COMMAND ----------\n"


def _cells(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    assert text.startswith(HEADER), path.name
    return [cell.strip("\n") for cell in text[len(HEADER) :].split(SEPARATOR)]


def _code(path: Path) -> list[str]:
    """The Python cells (not %md / %pip magic cells)."""
    return [c for c in _cells(path) if not all(line.startswith("# MAGIC") for line in c.splitlines())]


def _calls(path: Path, method: str) -> list[ast.Call]:
    """Every ``dbutils.widgets.<method>(...)`` call of the notebook."""
    tree = ast.parse("\n".join(_code(path)))
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == method
        and ast.unparse(node.func.value) == "dbutils.widgets"
    ]


def _version() -> str:
    match = re.search(r'version="([^"]+)"', (ROOT / "setup.py").read_text(encoding="utf-8"))
    assert match
    return match.group(1)


def test_the_notebooks_are_one_per_stage_group() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "01_ingest.py",
        "02_features.py",
        "03_train.py",
        "04_evaluate.py",
        "05_score.py",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_installs_this_wheel_then_restarts_python(path: Path) -> None:
    cells = _cells(path)
    pip = [i for i, c in enumerate(cells) if c.startswith("# MAGIC %pip install")]
    assert len(pip) == 1, path.name
    wheel = cells[pip[0]].split()[-1]
    assert wheel == f"../dist/relisten_spark-{_version()}-py3-none-any.whl"  # what `make wheel` builds
    assert cells[pip[0] + 1] == "dbutils.library.restartPython()  # noqa: F821"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_widgets_are_typed_and_their_choices_are_the_configs(path: Path) -> None:
    defined = {}
    for kind in ("text", "dropdown"):
        for call in _calls(path, kind):
            name = ast.literal_eval(call.args[0])
            defined[name] = (kind, [ast.literal_eval(a) for a in call.args[1:3]])
    expected_choices = {
        "profile": list(get_args(Profile)),
        "reasons": list(get_args(ScoringConfig.model_fields["reasons"].annotation)),
        "gpu": ["false", "true"],
    }
    for name, (kind, args) in defined.items():
        if name in expected_choices or name == "command":
            assert kind == "dropdown", (path.name, name)
            default, choices = args
            assert default in choices, (path.name, name)
            if name == "command":
                assert set(choices) <= set(cli.STAGES), path.name
            else:
                assert choices == expected_choices[name], (path.name, name)
    read = {ast.literal_eval(c.args[0]) for c in _calls(path, "get") if isinstance(c.args[0], ast.Constant)}
    assert read <= set(defined), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_functions_a_notebook_calls_exist(path: Path) -> None:
    tree = ast.parse("\n".join(_code(path)))
    imported = [(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names]
    assert ("relisten_spark.cli", "run_command") in imported, path.name  # the CLI's own stage runner
    for module, name in imported:
        owner = importlib.import_module(str(module))
        found = hasattr(owner, name) or importlib.util.find_spec(f"{module}.{name}") is not None
        assert found, f"{path.name}: {module}.{name}"
    commands = [
        ast.literal_eval(n.args[0])
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and ast.unparse(n.func) == "run_command"
        and isinstance(n.args[0], ast.Constant)
    ]
    assert set(commands) <= set(cli.STAGES), path.name
    assert "display(" in "\n".join(_code(path)), path.name


# ---- running the bodies ------------------------------------------------------------------------


class _Widgets:
    """Databricks' ``dbutils.widgets``: definitions keep their default unless the test sets a value."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.defaults: dict[str, str] = {}

    def text(self, name: str, default: str, label: str | None = None) -> None:
        self.defaults[name] = default

    def dropdown(self, name: str, default: str, choices: list[str], label: str | None = None) -> None:
        assert default in choices
        self.defaults[name] = default

    def get(self, name: str) -> str:
        return self.values.get(name, self.defaults[name])


class _Library:
    def restartPython(self) -> None:  # noqa: N802 (Databricks' name)
        """The wheel is installed already (the package under test)."""


class _DBUtils:
    def __init__(self, values: dict[str, str]) -> None:
        self.widgets = _Widgets(values)
        self.library = _Library()


def run_notebook(path: Path, spark: Any, values: dict[str, str]) -> dict[str, list[Any]]:
    """Run the notebook's Python cells in order; return what it displayed."""
    shown: dict[str, list[Any]] = {"display": [], "displayHTML": []}
    namespace = {
        "spark": spark,
        "dbutils": _DBUtils(values),
        "display": shown["display"].append,
        "displayHTML": shown["displayHTML"].append,
    }
    for i, cell in enumerate(_code(path)):
        exec(compile(cell, f"{path.name}[cell {i}]", "exec"), namespace)
    return shown


def _tiny(tmp_path: Path) -> dict[str, str]:
    """A config file for the local session and a tiny generated dataset; the widget values."""
    raw = tmp_path / "raw"
    sizes = ["data.synthetic.users=40", "data.synthetic.songs=120", "data.synthetic.events=600"]
    generator.run(load_config(None, [f"data.raw_dir={raw}", *sizes]))
    conf = tmp_path / "local.yaml"
    conf.write_text(
        yaml.safe_dump(
            {"spark": {"master": "local[2]", "shuffle_partitions": 2}, "data": {"raw_dir": str(raw)}}
        )
    )
    return {"conf": str(conf), "lake_root": str(tmp_path / "lake"), "models_root": str(tmp_path / "models")}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_widget_cells_make_the_config(path: Path, tmp_path: Path) -> None:
    """Up to ``cfg``: a non-empty text widget sets its key, an empty one keeps the config file's."""
    conf = tmp_path / "conf.yaml"
    conf.write_text(yaml.safe_dump({"lake": {"root": str(tmp_path / "file-lake")}}))
    values = {
        "conf": str(conf),
        "models_root": str(tmp_path / "models"),
        "raw_dir": str(tmp_path / "raw"),
        "run_date": "2026-11-23",
    }
    dbutils = _DBUtils(values)
    namespace: dict[str, Any] = {"dbutils": dbutils}
    for cell in _code(path):
        exec(compile(cell, path.name, "exec"), namespace)
        if "cfg" in namespace:
            break
    cfg = namespace["cfg"]
    assert cfg.lake.root == str(tmp_path / "file-lake")
    for name in set(dbutils.widgets.defaults) & set(notebook.TEXT_WIDGETS) - {"lake_root"}:
        key = notebook.TEXT_WIDGETS[name][0]
        assert str(functools.reduce(getattr, key.split("."), cfg)) == values[name], (path.name, key)


def _summary(shown: dict[str, list[Any]]) -> dict[tuple[str, str], str]:
    [frame, *_] = shown["display"]
    return {(r.stage, r.key): r.value for r in frame.collect()}


@pytest.mark.slow
@pytest.mark.spark
def test_ingest_notebook_runs_on_the_local_session(spark, tmp_path: Path) -> None:
    widgets = _tiny(tmp_path)
    shown = run_notebook(ROOT / "notebooks" / "01_ingest.py", spark, widgets)
    summary = _summary(shown)
    assert '"events": 600' in summary[("ingest", "rows")]
    assert (tmp_path / "lake" / "bronze" / "events" / "_delta_log").is_dir()


@pytest.mark.spark
@pytest.mark.slow
def test_every_notebook_runs_in_turn_on_tiny_data(spark, tmp_path: Path) -> None:
    """ingest -> features (serving) -> train-gbdt -> train-stack -> evaluate -> score."""
    widgets = _tiny(tmp_path)
    notebooks = ROOT / "notebooks"
    run_notebook(notebooks / "01_ingest.py", spark, widgets)
    features = _summary(run_notebook(notebooks / "02_features.py", spark, {**widgets, "profile": "serving"}))
    assert any(stage.startswith("features") for stage, _ in features)
    for command in ("train-gbdt", "train-stack"):
        trained = run_notebook(notebooks / "03_train.py", spark, {**widgets, "command": command})
        assert any(stage.startswith(command) for stage, _ in _summary(trained))
    shown = run_notebook(notebooks / "04_evaluate.py", spark, widgets)
    [html] = shown["displayHTML"]
    assert "<html" in html.lower()
    scored = run_notebook(notebooks / "05_score.py", spark, {**widgets, "run_date": "2026-11-23"})
    recs = scored["display"][1]
    assert recs.count() > 0
    assert {r.run_date.isoformat() for r in recs.select("run_date").distinct().collect()} == {"2026-11-23"}
