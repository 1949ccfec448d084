"""The model registry: versions never overwrite each other, latest is the newest complete one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from relisten_spark.errors import InputError
from relisten_spark.models.registry import METADATA, load_metadata, resolve, save_model


def _writer(text: str):
    def write(folder: Path) -> None:
        (folder / "model.txt").write_text(text)

    return write


def test_versions_accumulate_and_latest_is_newest(tmp_path):
    first = save_model(tmp_path, "lightgbm", _writer("one"), {"profile": "full"})
    second = save_model(tmp_path, "lightgbm", _writer("two"), {"profile": "full"})
    assert first != second
    assert second > first
    assert (tmp_path / "lightgbm" / first / "model.txt").read_text() == "one"
    assert (tmp_path / "lightgbm" / second / "model.txt").read_text() == "two"
    assert resolve(tmp_path, "lightgbm") == tmp_path / "lightgbm" / second
    assert resolve(tmp_path, "lightgbm", first) == tmp_path / "lightgbm" / first
    meta = load_metadata(resolve(tmp_path, "lightgbm"))
    assert (meta["name"], meta["version"], meta["profile"]) == ("lightgbm", second, "full")
    assert "created_at" in meta


def test_many_quick_saves_never_overwrite(tmp_path):
    versions = [save_model(tmp_path, "m", _writer(str(i)), {"i": i}) for i in range(20)]
    assert len(set(versions)) == 20
    for i, version in enumerate(versions):
        assert (tmp_path / "m" / version / "model.txt").read_text() == str(i)
        assert load_metadata(tmp_path / "m" / version)["version"] == version
    assert resolve(tmp_path, "m").name == max(versions)


def test_half_written_versions_are_never_picked(tmp_path):
    done = save_model(tmp_path, "m", _writer("ok"), {})
    # A staging folder of a save that died before its rename, and a folder without metadata
    # (named to sort after every real version): neither is a version.
    (tmp_path / "m" / ".staging-99999999T999999999999Z-abcdef").mkdir()
    (tmp_path / "m" / ".staging-99999999T999999999999Z-abcdef" / METADATA).write_text("{}")
    (tmp_path / "m" / "99999999T999999999999Z").mkdir()
    assert resolve(tmp_path, "m").name == done
    with pytest.raises(InputError, match="no version 99999999T999999999999Z"):
        resolve(tmp_path, "m", "99999999T999999999999Z")


def test_a_failing_writer_leaves_nothing_behind(tmp_path):
    def broken(folder: Path) -> None:
        (folder / "model.txt").write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_model(tmp_path, "m", broken, {})
    assert list((tmp_path / "m").iterdir()) == []
    with pytest.raises(InputError, match="no trained model 'm'"):
        resolve(tmp_path, "m")


def test_resolve_by_metadata(tmp_path):
    serving = save_model(tmp_path, "lightgbm", _writer("s"), {"profile": "serving"})
    full = save_model(tmp_path, "lightgbm", _writer("f"), {"profile": "full"})
    assert resolve(tmp_path, "lightgbm").name == full
    assert resolve(tmp_path, "lightgbm", where={"profile": "serving"}).name == serving
    with pytest.raises(InputError, match=r"no trained model 'lightgbm' with \{'profile': 'other'\}"):
        resolve(tmp_path, "lightgbm", where={"profile": "other"})


def test_metadata_is_json_with_non_json_values_as_text(tmp_path):
    version = save_model(tmp_path, "m", _writer("x"), {"path": tmp_path, "n": 3})
    raw = json.loads((tmp_path / "m" / version / METADATA).read_text())
    assert raw["path"] == str(tmp_path)
    assert raw["n"] == 3
