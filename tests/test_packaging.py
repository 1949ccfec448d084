"""The wheel respects the cluster's Spark: pyspark only in the `[local]` extra (pinned, inside the
supported range), the supported range checked at start with one line and exit 2."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from relisten_spark import cli, compat

ROOT = Path(__file__).resolve().parents[1]


def _setup_value(name: str) -> object:
    """A literal assigned at the top of setup.py (INSTALL_REQUIRES, EXTRAS_REQUIRE)."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not assigned in setup.py")


def test_pyspark_is_only_in_the_local_extra_pinned_inside_the_supported_range() -> None:
    hard = _setup_value("INSTALL_REQUIRES")
    assert [r for r in hard if r.lower().startswith("pyspark")] == []  # type: ignore[union-attr]
    local = _setup_value("EXTRAS_REQUIRE")["local"]  # type: ignore[index]
    [pin] = [r for r in local if r.startswith("pyspark==")]
    pinned = compat.major_minor(pin.split("==")[1])
    assert pinned is not None
    assert compat.PYSPARK[0] <= pinned < compat.PYSPARK[1]
    text = (ROOT / "setup.py").read_text(encoding="utf-8")
    assert 'python_requires=">=3.11,<3.13"' in text  # the same range as compat.PYTHON
    assert compat.PYTHON == ((3, 11), (3, 13))


@pytest.mark.parametrize("found", ["4.0.0", "4.1.4", "4.1.0.dev1"])
def test_supported_pyspark_passes(found: str) -> None:
    compat.check_versions(found, "3.11.7")


@pytest.mark.parametrize("found", ["3.5.1", "4.2.0", "5.0.0", "unknown"])
def test_unsupported_pyspark_is_one_clear_line(found: str) -> None:
    with pytest.raises(compat.UnsupportedVersionError) as caught:
        compat.check_versions(found, "3.11.7")
    message = str(caught.value)
    assert "\n" not in message
    assert f"supports pyspark >=4.0,<4.2, found pyspark {found}" in message


def test_missing_pyspark_and_unsupported_python_are_one_line() -> None:
    with pytest.raises(compat.UnsupportedVersionError, match=r"pyspark is not installed: .*\[local\]"):
        compat.check_versions(None, "3.11.7")
    with pytest.raises(
        compat.UnsupportedVersionError, match=r"supports Python >=3.11,<3.13, found Python 3.10.4"
    ):
        compat.check_versions("4.1.4", "3.10.4")
    compat.check_versions()  # this venv: the pinned pyspark on a supported Python


def test_cli_stops_at_start_with_one_line_and_exit_2(monkeypatch, capsys) -> None:
    monkeypatch.setattr(cli, "check_versions", lambda: compat.check_versions("3.5.1"))
    assert cli.main(["ingest", "--set", "lake.root=unused"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        "relisten ingest: error: relisten_spark supports pyspark >=4.0,<4.2, found pyspark 3.5.1"
    )
    assert len(err.splitlines()) == 1


@pytest.mark.slow
def test_wheel_metadata_keeps_pyspark_in_the_extra(tmp_path: Path) -> None:
    """What `make wheel` builds (about 5 s)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            ".",
        ],
        cwd=ROOT,
        check=True,
    )
    [wheel] = tmp_path.glob("relisten_spark-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        [meta] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        requires = [line for line in archive.read(meta).decode().splitlines() if line.startswith("Requires-")]
    spark = [line for line in requires if "pyspark" in line]
    assert spark == ['Requires-Dist: pyspark==4.1.4; extra == "local"']
    assert "Requires-Python: <3.13,>=3.11" in requires or "Requires-Python: >=3.11,<3.13" in requires
