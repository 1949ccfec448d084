"""Typed, strict configuration.

One YAML file per target (``conf/local.yaml``, ``conf/cluster.yaml``, ``conf/databricks.yaml``)
holds only what differs from the defaults declared here. ``--set key=value`` overrides any
key; the value is parsed as YAML (``--set scoring.top_n=5``, ``--set gbdt.params={lr: 0.1}``).
Unknown keys, wrong types and missing files raise :class:`ConfigError` naming the culprit.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from relisten_spark.errors import ConfigError

Profile = Literal["full", "serving"]
NetName = Literal["jenn", "felu_net"]
BaseModelName = Literal["lightgbm", "jenn", "felu_net"]


def _net_names() -> list[NetName]:
    return ["jenn", "felu_net"]


def _base_model_names() -> list[BaseModelName]:
    return ["lightgbm", "jenn", "felu_net"]


def _profiles() -> list[Profile]:
    return ["full", "serving"]


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SparkConfig(Section):
    master: str = "local[*]"
    app_name: str = "relisten"
    driver_memory: str = "4g"
    shuffle_partitions: int = Field(8, ge=1)
    ui: bool = False
    conf: dict[str, str] = Field(default_factory=dict)


class LakeConfig(Section):
    root: str = "./lakehouse"


class ModelsConfig(Section):
    root: str = "./models"


class SyntheticConfig(Section):
    users: int = Field(1000, ge=2)
    songs: int = Field(4000, ge=2)
    events: int = Field(60000, ge=10)
    seed: int = 7
    test_fraction: float = Field(0.2574, gt=0, lt=1)


class DataConfig(Section):
    source: Literal["synthetic", "kkbox"] = "synthetic"
    raw_dir: str = "./data/raw"
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)


class FeaturesConfig(Section):
    profile: Profile = "full"
    svd_song_k: int = Field(48, ge=1)
    svd_artist_k: int = Field(16, ge=1)
    windows: list[int] = Field(default_factory=lambda: [10, 25, 500, 5000, 10000, 50000])
    svd_oversample: int = Field(10, ge=0)
    svd_power_iters: int = Field(4, ge=0)
    svd_local_max_nnz: int = Field(2_000_000, ge=0)
    seed: int = 42


class EvaluationConfig(Section):
    split: Literal["time", "random"] = "time"
    holdout_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int = 42


class GbdtConfig(Section):
    backend: Literal["barrier", "synapseml"] = "barrier"
    preset: Literal["fast", "thesis"] = "fast"
    profile: Profile = "full"
    num_tasks: int = Field(2, ge=1)
    tree_learner: Literal["data", "voting"] = "data"
    num_boost_round: int | None = Field(None, ge=1)
    early_stopping_rounds: int = Field(0, ge=0)
    params: dict[str, Any] = Field(default_factory=dict)
    network_timeout_s: int = Field(120, ge=5)
    categorical: Literal["preset", "none", "source", "manifest"] = "preset"


class NetsConfig(Section):
    models: list[NetName] = Field(default_factory=_net_names)
    preset: Literal["fast", "thesis"] = "fast"
    profile: Profile = "full"
    num_processes: int = Field(2, ge=1)
    use_gpu: bool = False
    local_mode: bool = True
    epochs: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=1)
    activation: Literal["elu", "relu"] = "elu"
    hidden: int = Field(148, ge=1)
    batchnorm: bool = False
    class_weights: bool = False
    early_stopping_patience: int = Field(3, ge=0)
    seed: int = 42
    block_dropout: float = Field(0.0, ge=0, lt=1)
    learning_rate: float | None = Field(None, gt=0)
    row_group_rows: int = Field(65536, ge=64)
    shuffle_buffer_rows: int = Field(131072, ge=1)
    threads_per_process: int | None = Field(None, ge=1)
    collective_timeout_s: int = Field(600, ge=10)


class StackConfig(Section):
    C: float = Field(1.0, gt=0)
    class_weight: Literal["balanced", "none"] = "balanced"
    max_iter: int = Field(500, ge=1)
    # base models whose holdout logits the stack combines (those without predictions are left out)
    models: list[BaseModelName] = Field(default_factory=_base_model_names)
    # profile of the base models' predictions; None = scoring.profile (the stack is what scores)
    profile: Profile | None = None
    # the calib rows brought to the driver for the fit are a seeded sample of at most this many
    max_calib_rows: int = Field(1_000_000, ge=10)
    seed: int = 42


class SurfaceConfig(Section):
    top_n: int | None = Field(None, ge=1)
    min_song_length_ms: int | None = None
    max_song_length_ms: int | None = None
    source_system_tab: str = "discover"
    source_screen_name: str = "Online playlist more"
    source_type: str = "online-playlist"
    exclude_heard: bool = True
    max_per_artist: int | None = Field(None, ge=1)


def _default_surfaces() -> dict[str, SurfaceConfig]:
    return {
        "story": SurfaceConfig(
            min_song_length_ms=30_000,
            max_song_length_ms=300_000,
            source_system_tab="discover",
            source_screen_name="Discover Feature",
            source_type="online-playlist",
            exclude_heard=True,
            max_per_artist=2,
        ),
        "shopping": SurfaceConfig(
            source_system_tab="search",
            source_screen_name="Search",
            source_type="song",
            exclude_heard=False,
            max_per_artist=3,
        ),
    }


class ScoringConfig(Section):
    top_n: int = Field(20, ge=1)
    candidates: int = Field(200, ge=1)
    # the partition written (YYYY-MM-DD; YAML and --set parse it as a date); None = today (UTC)
    run_date: date | None = None
    # a candidate is an event "now": only the point-in-time profile describes it (the full
    # profile's FUTURE and BATCH columns would need rows after it)
    profile: Literal["serving"] = "serving"
    block_size: int = Field(4096, ge=1)
    # songs per shard row in candidate generation (one shard = one task-side matrix)
    song_shard_size: int = Field(500_000, ge=1)
    # nearest songs generated beyond `candidates`, kept for surface filters and heard exclusion
    candidate_margin: int = Field(200, ge=0)
    batch_size: int = Field(8192, ge=1)
    # what the reasons' contributions are: "path" (per-split credit along the decision path,
    # scoring/attribution.py) or "shap" (LightGBM's TreeSHAP, ~50x slower on a 100-tree model)
    reasons: Literal["path", "shap"] = "path"
    surfaces: dict[str, SurfaceConfig] = Field(default_factory=_default_surfaces)


class PipelineConfig(Section):
    generate: bool = True
    # feature and training stages run once per profile; scoring uses scoring.profile
    profiles: list[Profile] = Field(default_factory=_profiles)
    stages: list[str] = Field(
        default_factory=lambda: [
            "generate",
            "ingest",
            "features",
            "train-gbdt",
            "train-nets",
            "train-stack",
            "evaluate",
            "score",
        ]
    )


class Config(Section):
    spark: SparkConfig = Field(default_factory=SparkConfig)
    lake: LakeConfig = Field(default_factory=LakeConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    gbdt: GbdtConfig = Field(default_factory=GbdtConfig)
    nets: NetsConfig = Field(default_factory=NetsConfig)
    stack: StackConfig = Field(default_factory=StackConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)

    def digest(self) -> str:
        """A short stable hash of the whole config, recorded with every run."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict, checking every step names a known key."""
    parts = dotted.split(".")
    node: Any = tree
    known: Any = Config.model_fields
    model: Any = Config
    for depth, part in enumerate(parts):
        is_last = depth == len(parts) - 1
        if known is not None and part not in known:
            raise ConfigError(f"unknown config key: {'.'.join(parts[: depth + 1])}")
        if is_last:
            node[part] = value
            return
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config key {'.'.join(parts[: depth + 1])} is not a section")
        known, model = _child_fields(model, part)


def _child_fields(model: Any, name: str) -> tuple[Any, Any]:
    """The fields of a sub-section; None where the value is a free-form mapping."""
    annotation = model.model_fields[name].annotation if model is not None else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation.model_fields, annotation
    return None, None


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` laid over ``base``, recursing into mappings present in both."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _format_error(err: ValidationError) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"unknown config key: {key}"
    return f"bad config value for {key}: {first['msg']}"


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load ``path`` (YAML), apply ``key=value`` overrides, validate strictly.

    >>> load_config(None, ["scoring.top_n=5"]).scoring.top_n
    5
    """
    tree: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"config file not found: {file}")
        try:
            tree = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {file} is not valid YAML: {exc}") from exc
        if not isinstance(tree, dict):
            raise ConfigError(f"config file {file} must hold a mapping at the top level")
    tree = _deep_merge(Config().model_dump(), tree)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set needs key=value, got: {item}")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        _set_dotted(tree, key.strip(), value)
    try:
        return Config.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(_format_error(err)) from None
