"""Strict config loading: unknown keys, wrong types and missing files name the culprit."""

from __future__ import annotations

from pathlib import Path

import pytest

from relisten_spark.config import load_config
from relisten_spark.errors import ConfigError

CONF = Path(__file__).resolve().parents[1] / "conf"
REQUIRED = [
    "spark.master",
    "lake.root",
    "models.root",
    "data.raw_dir",
    "data.synthetic.users",
    "data.synthetic.songs",
    "data.synthetic.events",
    "data.synthetic.seed",
    "scoring.top_n",
    "scoring.candidates",
]


@pytest.mark.parametrize("name", ["local.yaml", "cluster.yaml", "databricks.yaml"])
def test_shipped_configs_load(name: str) -> None:
    cfg = load_config(CONF / name)
    assert cfg.lake.root


@pytest.mark.parametrize("key", REQUIRED)
def test_spec_keys_exist_and_override(key: str) -> None:
    value = "local[1]" if key == "spark.master" else ("/tmp/x" if "root" in key or "dir" in key else "30")
    cfg = load_config(CONF / "local.yaml", [f"{key}={value}"])
    node = cfg
    for part in key.split("."):
        node = getattr(node, part)
    assert str(node) == value


def test_unknown_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key: scoring\.topn"):
        load_config(None, ["scoring.topn=3"])


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    conf = tmp_path / "c.yaml"
    conf.write_text("lake:\n  root: x\n  rooot: y\n")
    with pytest.raises(ConfigError, match=r"unknown config key: lake\.rooot"):
        load_config(conf)


def test_wrong_type_is_named() -> None:
    with pytest.raises(ConfigError, match=r"data\.synthetic\.users"):
        load_config(None, ["data.synthetic.users=many"])


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere\.yaml"):
        load_config(tmp_path / "nowhere.yaml")


def test_override_parses_yaml_values() -> None:
    cfg = load_config(None, ["features.windows=[10, 20]", "scoring.surfaces.story.max_per_artist=1"])
    assert cfg.features.windows == [10, 20]
    assert cfg.scoring.surfaces["story"].max_per_artist == 1
    assert cfg.scoring.surfaces["shopping"].max_per_artist == 3  # other surface keeps its default


def test_digest_changes_with_config() -> None:
    assert load_config(None).digest() != load_config(None, ["scoring.top_n=7"]).digest()
