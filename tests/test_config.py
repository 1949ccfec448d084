"""Strict config loading: unknown keys, wrong types and missing files name the culprit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from pydantic import BaseModel, Field

from relisten_spark.config import Config, FeaturesConfig, commented_yaml, load_config
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


def _undescribed(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every key of ``model`` without a description, recursing into sections (and mappings of
    sections, such as ``scoring.surfaces``)."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        if not (field.description or "").strip():
            yield key
        for section in _sections(field.annotation):
            yield from _undescribed(section, f"{key}.")


def _sections(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in get_args(annotation):
        yield from _sections(arg)


def test_every_config_key_has_a_description() -> None:
    keys = list(_undescribed(Config))
    assert keys == [], f"config keys without Field(description=...): {', '.join(keys)}"


def test_the_description_walk_reaches_every_section() -> None:
    seen = {section.__name__ for section in _walk(Config)}
    assert {"SparkConfig", "SyntheticConfig", "SurfaceConfig", "PipelineConfig"} <= seen


def _walk(model: type[BaseModel]) -> Iterator[type[BaseModel]]:
    for field in model.model_fields.values():
        for section in _sections(field.annotation):
            yield section
            yield from _walk(section)


def test_a_missing_description_is_caught() -> None:
    class Bare(BaseModel):
        described: int = Field(1, description="has one")
        bare: int = 2

    class Outer(BaseModel):
        inner: dict[str, Bare] = Field(default_factory=dict, description="a mapping of sections")

    assert list(_undescribed(Outer)) == ["inner.bare"]


def test_commented_yaml_loads_back_as_the_config() -> None:
    cfg = load_config(
        None,
        [
            "scoring.run_date=2024-03-01",
            "gbdt.params={learning_rate: 0.05, extra: {a: [1, 2]}}",
            "spark.conf={spark.x: 'a: b # c'}",
            "scoring.surfaces.story.source_screen_name='x # y: z'",
        ],
    )
    text = commented_yaml(cfg)
    assert yaml.safe_load(text) == cfg.model_dump()
    assert "  # " in text
    description = FeaturesConfig.model_fields["windows"].description
    assert f"  windows: [10, 25, 500, 5000, 10000, 50000]  # {description}" in text
