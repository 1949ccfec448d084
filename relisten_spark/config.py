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
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, ValidationError

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
    master: str = Field(
        "local[*]", description="Spark master; only local[...] builds a session, others take the existing one"
    )
    app_name: str = Field("relisten", description="Spark application name")
    driver_memory: str = Field("4g", description="driver memory of a local session (spark.driver.memory)")
    shuffle_partitions: int = Field(
        8, ge=1, description="spark.sql.shuffle.partitions and default parallelism of a local session"
    )
    ui: bool = Field(False, description="start the Spark UI (local sessions)")
    log_config: str = Field(
        "conf/log4j2.properties",
        description="log4j2 file for a local session's JVM (Spark at WARN); unused when the file is missing",
    )
    conf: dict[str, str] = Field(
        default_factory=dict, description="extra Spark settings, name -> value, for a local session"
    )


class LakeConfig(Section):
    root: str = Field("./lakehouse", description="root of the Delta tables: <root>/<layer>/<table>")
    retention_hours: int = Field(
        168, ge=0, description="relisten vacuum keeps the files of the versions of the last N hours"
    )
    vacuum_after_write: bool = Field(
        False, description="vacuum (lake.retention_hours) each table a stage has just committed"
    )


class ModelsConfig(Section):
    root: str = Field("./models", description="model registry folder: <root>/<model>/<version>/")


class SyntheticConfig(Section):
    users: int = Field(1000, ge=2, description="members generated")
    songs: int = Field(4000, ge=2, description="songs generated")
    events: int = Field(60000, ge=10, description="listening events generated (train + test)")
    seed: int = Field(7, description="generator seed: same settings and seed, same files")
    test_fraction: float = Field(0.2574, gt=0, lt=1, description="share of the events written to test.csv")


class InteractionsConfig(Section):
    path: str = Field(
        "./data/interactions.tsv",
        description="the interactions file (user, item[, timestamp]) or a folder of them",
    )
    items_path: str | None = Field(
        None, description="optional item metadata file (item[, artist, genre, language, name]); null = none"
    )
    delimiter: Literal["auto", "tab", "comma", "whitespace"] = Field(
        "auto",
        description="field separator; auto = tab, else comma, else runs of blanks (from the first line)",
    )
    header: bool = Field(
        True, description="the first line names the columns (RecBole's name:type headers included)"
    )
    protocol: Literal["leave_one_out", "time"] = Field(
        "leave_one_out",
        description="holdout: per user last event eval, the one before calib; or time (evaluation.*)",
    )


class DataConfig(Section):
    source: Literal["synthetic", "kkbox", "interactions"] = Field(
        "synthetic",
        description="synthetic (generated), kkbox (real CSVs) or interactions (a user-item log); "
        "pipeline skips generate unless synthetic",
    )
    interactions: InteractionsConfig = Field(
        default_factory=InteractionsConfig,
        description="the generic interactions file (data.source interactions)",
    )
    raw_dir: str = Field("./data/raw", description="folder of the KKBOX CSVs (and the generator's truth.csv)")
    encoding: Literal["utf-8", "latin-1"] = Field(
        "utf-8", description="encoding of the KKBOX CSVs; a byte invalid in it stops ingest naming the line"
    )
    allow_empty: bool = Field(
        False, description="accept KKBOX CSVs without data rows (else a header-only train.csv is an error)"
    )
    synthetic: SyntheticConfig = Field(
        default_factory=SyntheticConfig, description="size and seed of the generated dataset"
    )


class FeaturesConfig(Section):
    profile: Profile = Field(
        "full", description="full (thesis: aggregates see the whole log) or serving (point-in-time)"
    )
    svd_song_k: int = Field(48, ge=1, description="rank of the user x song SVD")
    svd_artist_k: int = Field(16, ge=1, description="rank of the user x artist SVD")
    windows: list[int] = Field(
        default_factory=lambda: [10, 25, 500, 5000, 10000, 50000],
        description="sizes (in events) of the rolling-window count features",
    )
    svd_oversample: int = Field(10, ge=0, description="extra columns of the randomized SVD's sketch")
    svd_power_iters: int = Field(4, ge=0, description="power iterations of the randomized SVD")
    svd_local_max_nnz: int = Field(
        2_000_000, ge=0, description="matrices with at most this many non-zeros are factorised on the driver"
    )
    seed: int = Field(42, description="seed of the randomized SVD")


class EvaluationConfig(Section):
    split: Literal["time", "random"] = Field(
        "time", description="holdout split: time (last rows by event order) or random"
    )
    holdout_fraction: float = Field(
        0.2, gt=0, lt=1, description="share of train rows held out (half calib, half eval)"
    )
    seed: int = Field(42, description="seed of the random split")
    funnel_sources: list[Literal["svd", "stage1", "stage2"]] = Field(
        default_factory=list,
        description="candidate sources the backtest also ranks from, each measured as "
        "funnel:<surface>:<source> (svd: SVD nearest songs; stage1/stage2: the latest retriever "
        "of that stage); empty = none",
    )


class GbdtConfig(Section):
    backend: Literal["barrier", "synapseml"] = Field(
        "barrier", description="LightGBM on Spark barrier tasks, or SynapseML where installed"
    )
    preset: Literal["fast", "thesis", "thesis_exact"] = Field(
        "fast",
        description="LightGBM settings: fast (demo, tests), thesis (the thesis's best run with GOSS, "
        "faster at the same AUC) or thesis_exact (that run's recorded parameters)",
    )
    profile: Profile = Field("full", description="feature profile the model trains on")
    num_tasks: int = Field(
        2, ge=1, description="Spark tasks (LightGBM machines) the training rows are spread over"
    )
    tree_learner: Literal["data", "voting"] = Field("data", description="LightGBM's distributed tree learner")
    num_boost_round: int | None = Field(None, ge=1, description="boosting rounds; null = the preset's")
    early_stopping_rounds: int = Field(
        0, ge=0, description="stop after this many rounds without gain on the holdout; 0 = off"
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="LightGBM parameters laid over the preset's, name -> value"
    )
    network_timeout_s: int = Field(
        120, ge=5, description="LightGBM network timeout between the tasks, seconds"
    )
    categorical: Literal["preset", "none", "source", "manifest"] = Field(
        "preset", description="categorical columns: the preset's, none, only source, or the manifest's"
    )


class NetsConfig(Section):
    models: list[NetName] = Field(default_factory=_net_names, description="which nets train-nets trains")
    preset: Literal["fast", "thesis"] = Field(
        "fast", description="net settings: fast (demo, tests) or thesis (the notebook's)"
    )
    profile: Profile = Field("full", description="feature profile the nets train on")
    num_processes: int = Field(
        2, ge=1, description="DistributedDataParallel ranks (TorchDistributor processes)"
    )
    use_gpu: bool = Field(False, description="train on CUDA GPUs, one per rank")
    local_mode: bool = Field(
        True, description="all ranks on the driver's machine; false = barrier tasks on executors"
    )
    epochs: int | None = Field(None, ge=1, description="training epochs; null = the preset's")
    batch_size: int | None = Field(None, ge=1, description="global batch size; null = the preset's")
    activation: Literal["elu", "relu"] = Field("elu", description="activation of the dense blocks")
    hidden: int = Field(148, ge=1, description="hidden units of the dense blocks")
    batchnorm: bool = Field(False, description="BatchNorm in the dense blocks")
    class_weights: bool = Field(False, description="weight the loss by inverse class frequency")
    early_stopping_patience: int = Field(
        3,
        ge=0,
        description="epochs without a better validation AUC before stopping (where the preset stops early)",
    )
    seed: int = Field(42, description="seed of weights and shuffling")
    block_dropout: float = Field(0.0, ge=0, lt=1, description="dropout after each dense block; 0 = none")
    learning_rate: float | None = Field(None, gt=0, description="initial learning rate; null = the preset's")
    row_group_rows: int = Field(65536, ge=64, description="rows per Parquet row group of the input shards")
    shuffle_buffer_rows: int = Field(131072, ge=1, description="rows each rank holds to shuffle its stream")
    threads_per_process: int | None = Field(
        None, ge=1, description="torch threads per rank; null = the cores shared out"
    )
    collective_timeout_s: int = Field(
        600, ge=10, description="timeout of the ranks' collective operations, seconds"
    )


class RetrieverFinetuneConfig(Section):
    users: int | None = Field(
        300, ge=2, description="training-period users sampled for the teacher lists; null = all"
    )
    candidates: int = Field(
        200, ge=2, description="the stage-1 retriever's top-M songs per user that the ranker scores"
    )
    holdout_share: float = Field(
        0.2, gt=0, lt=1, description="share of the sampled users held out to measure agreement"
    )
    margin: float = Field(
        0.02, ge=0, description="a pair (i, j) is trained when ranker score i > score j + margin"
    )
    softmax_weight: float = Field(
        0.5, ge=0, description="weight of the stage-1 sampled-softmax loss added to the pairwise loss"
    )
    agreement_n: int = Field(20, ge=1, description="the ranker's top-N whose agreement is measured")
    agreement_k: int = Field(
        50, ge=1, description="the retriever's top-K (of the M) that should hold the ranker's top-N"
    )
    epochs: int = Field(5, ge=1, description="most fine-tuning epochs")
    batch_size: int = Field(32, ge=1, description="teacher users per global batch")
    learning_rate: float = Field(0.0002, gt=0, description="Adam learning rate of the fine-tuning")
    early_stopping_patience: int = Field(
        2, ge=0, description="epochs without a better held-out agreement NDCG before stopping; 0 = off"
    )


class RetrieverConfig(Section):
    max_len: int = Field(
        200, ge=2, description="events per user sequence the retriever reads (the last ones)"
    )
    hidden: int = Field(64, ge=8, description="width of the transformer (embeddings and blocks)")
    layers: int = Field(2, ge=1, description="causal self-attention blocks")
    heads: int = Field(2, ge=1, description="attention heads per block (hidden must divide by it)")
    inner: int = Field(256, ge=8, description="width of each block's feed-forward layer")
    dropout: float = Field(0.2, ge=0, lt=1, description="dropout of embeddings, attention and blocks")
    item_bias: bool = Field(
        True, description="a learned score bias per item (its popularity prior) beside the dot product"
    )
    loss: Literal["full", "sampled", "sampled_logq", "sampled_logq_corrected"] = Field(
        "sampled_logq",
        description="next-item loss: full softmax or a sampled softmax (see retrieval/losses.py)",
    )
    uniform_negatives: int = Field(
        256, ge=0, description="uniform negatives per batch drawn besides the in-batch ones (sampled losses)"
    )
    in_batch_negatives: int | None = Field(
        None,
        ge=1,
        description="in-batch negatives per batch: that many of the batch's next items drawn with "
        "replacement (bounds the positions x negatives logits of long sequences); null = all of them",
    )
    temperature: float = Field(1.0, gt=0, description="logits are dot products divided by this")
    epochs: int = Field(10, ge=1, description="most training epochs")
    batch_size: int = Field(128, ge=1, description="user sequences per global batch")
    target_window: int = Field(
        1,
        ge=1,
        description="each position learns one of its next target_window events, drawn anew every "
        "step (dense all-action); 1 = the next event",
    )
    learning_rate: float = Field(0.001, gt=0, description="Adam learning rate")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay; 0 = plain Adam")
    early_stopping_patience: int = Field(
        3, ge=0, description="epochs without a better validation score before stopping; 0 = off"
    )
    early_stopping_metric: Literal["ndcg@10", "recall@200"] = Field(
        "ndcg@10",
        description="validation score that picks the best epoch: ndcg@10 (the next events' rank) or "
        "recall@200 (the share of calib events whose song is in the user's top 200: the candidates' job)",
    )
    exclude_heard: bool = Field(
        False, description="validation ranking leaves out the items of the input sequence"
    )
    mask_heard: bool = Field(
        False, description="training: the items a position's user already heard are no negatives of it"
    )
    refit: bool = Field(
        False,
        description="after the validated run, train again from the start on the fit and calib rows "
        "for its best epoch count; that refit is the registered model candidates and evaluation use",
    )
    seed: int = Field(42, description="seed of weights, shuffling and negatives")
    num_processes: int = Field(
        1, ge=1, description="DistributedDataParallel ranks (TorchDistributor processes)"
    )
    use_gpu: bool = Field(False, description="train on CUDA GPUs, one per rank")
    local_mode: bool = Field(
        True, description="all ranks on the driver's machine; false = barrier tasks on executors"
    )
    shuffle_buffer_rows: int = Field(
        8192, ge=1, description="sequences each rank holds to shuffle its stream"
    )
    threads_per_process: int | None = Field(
        None, ge=1, description="torch threads per rank; null = the cores shared out"
    )
    collective_timeout_s: int = Field(
        600, ge=10, description="timeout of the ranks' collective operations, seconds"
    )
    finetune: RetrieverFinetuneConfig = Field(
        default_factory=RetrieverFinetuneConfig,
        description="stage 2: pairwise fine-tuning on the ranker's scores (finetune-retriever)",
    )
    candidates_stage: Literal["latest", "1", "2"] = Field(
        "latest",
        description="retriever version candidates use: latest (the fine-tuned one when newest), 1 or 2",
    )


class StackConfig(Section):
    C: float = Field(1.0, gt=0, description="inverse regularisation strength of the logistic regression")
    class_weight: Literal["balanced", "none"] = Field(
        "balanced", description="class weights of the logistic regression"
    )
    max_iter: int = Field(500, ge=1, description="iterations of the lbfgs fit")
    models: list[BaseModelName] = Field(
        default_factory=_base_model_names,
        description="base models whose holdout logits the stack combines (skipped without predictions)",
    )
    profile: Profile | None = Field(
        None, description="profile of the base models' predictions; null = scoring.profile"
    )
    max_calib_rows: int = Field(
        1_000_000,
        ge=10,
        description="at most this many calib rows (a seeded sample) are fitted on the driver",
    )
    seed: int = Field(42, description="seed of the calib sample")


class SurfaceConfig(Section):
    top_n: int | None = Field(None, ge=1, description="songs per user on this surface; null = scoring.top_n")
    min_song_length_ms: int | None = Field(None, description="shortest song shown, ms; null = no bound")
    max_song_length_ms: int | None = Field(None, description="longest song shown, ms; null = no bound")
    source_system_tab: str = Field("discover", description="source_system_tab of the scored event")
    source_screen_name: str = Field(
        "Online playlist more", description="source_screen_name of the scored event"
    )
    source_type: str = Field("online-playlist", description="source_type of the scored event")
    exclude_heard: bool = Field(True, description="leave out songs the user already heard")
    max_per_artist: int | None = Field(
        None, ge=1, description="at most this many songs of one artist; null = no cap"
    )
    popularity_penalty: float = Field(
        0.0, ge=0, description="rank by score - this * log1p(song plays): higher favours less popular songs"
    )
    mmr_weight: float = Field(
        0.0, ge=0, le=1, description="diversity re-rank (MMR) weight on similarity to songs above; 0 = off"
    )
    mmr_similarity: Literal["artist", "genre", "svd"] = Field(
        "genre", description="similarity of the MMR re-rank: same artist, same first genre, or SVD cosine"
    )


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


CandidateSource = Literal["retriever", "svd", "als", "popular"]


def _default_candidate_sources() -> dict[CandidateSource, int]:
    return {"retriever": 150, "svd": 30, "popular": 20}


class ScoringConfig(Section):
    top_n: int = Field(20, ge=1, description="songs per user on every surface without its own top_n")
    candidates: int = Field(200, ge=1, description="candidate songs per user ranked by the ensemble")
    candidate_sources: dict[CandidateSource, NonNegativeInt] = Field(
        default_factory=_default_candidate_sources,
        description="relisten candidates: source -> quota of songs, in priority order (retriever, svd, "
        "als, popular; 0 = off); short sources are filled from the others",
    )
    run_date: date | None = Field(
        None, description="the partition written (YYYY-MM-DD, parsed as a date); null = today (UTC)"
    )
    # a candidate is an event "now": only the point-in-time profile describes it (the full
    # profile's FUTURE and BATCH columns would need rows after it)
    profile: Literal["serving"] = Field("serving", description="feature profile scoring reads (serving only)")
    block_size: int = Field(
        4096, ge=1, description="users per block (and songs per step) of candidate generation"
    )
    song_shard_size: int = Field(
        500_000,
        ge=1,
        description="songs per shard row in candidate generation (one shard = one task-side matrix)",
    )
    candidate_margin: int = Field(
        200,
        ge=0,
        description="nearest songs generated beyond candidates, for surface filters and heard exclusion",
    )
    batch_size: int = Field(8192, ge=1, description="rows per Arrow batch of the ranking step")
    reasons: Literal["path", "shap"] = Field(
        "path",
        description="reasons' contributions: path (credit along the decision path) or shap (TreeSHAP)",
    )
    compiled_gbdt: bool = Field(
        True,
        description="score LightGBM compiled by lleaves (compiled once per model); false = Booster.predict",
    )
    surfaces: dict[str, SurfaceConfig] = Field(
        default_factory=_default_surfaces, description="product surfaces, name -> filters and context"
    )


class PipelineConfig(Section):
    generate: bool = Field(True, description="run generate first (never with data.source kkbox)")
    profiles: list[Profile] = Field(
        default_factory=_profiles,
        description="profiles the feature and training stages run for, in turn; scoring uses scoring.profile",
    )
    stages: list[str] = Field(
        default_factory=lambda: [
            "generate",
            "ingest",
            "features",
            "train-gbdt",
            "train-nets",
            "train-stack",
            "train-retriever",
            "finetune-retriever",
            "candidates",
            "score",
            "backtest",
            "evaluate",
        ],
        description="the stages pipeline runs, in order",
    )


class TrackingConfig(Section):
    enabled: bool = Field(True, description="log every stage's run and register its models in MLflow")
    uri: str | None = Field(
        None,
        description="MLflow tracking URI (e.g. databricks); null = sqlite:///<lake.root>/mlflow/mlflow.db",
    )
    registry_uri: str | None = Field(
        None, description="MLflow model registry URI (e.g. databricks-uc); null = the tracking URI"
    )
    artifact_location: str | None = Field(
        None,
        description="artifact root of a new experiment; null = <lake.root>/mlflow/artifacts, or the "
        "server's default with a tracking.uri",
    )
    experiment: str = Field(
        "relisten", description="MLflow experiment of the runs (a workspace path on Databricks)"
    )
    registered_model_prefix: str = Field(
        "relisten_",
        description="registered model name = prefix + model (Unity Catalog: '<catalog>.<schema>.')",
    )


class Config(Section):
    spark: SparkConfig = Field(default_factory=SparkConfig, description="the Spark session")
    lake: LakeConfig = Field(default_factory=LakeConfig, description="where the Delta tables live")
    models: ModelsConfig = Field(default_factory=ModelsConfig, description="where the trained models live")
    data: DataConfig = Field(default_factory=DataConfig, description="the raw data: source and location")
    features: FeaturesConfig = Field(default_factory=FeaturesConfig, description="the feature job")
    evaluation: EvaluationConfig = Field(
        default_factory=EvaluationConfig, description="the holdout protocol (fit / calib / eval / test)"
    )
    gbdt: GbdtConfig = Field(default_factory=GbdtConfig, description="LightGBM training (train-gbdt)")
    nets: NetsConfig = Field(
        default_factory=NetsConfig, description="JENN and F-ELU-Net training (train-nets)"
    )
    stack: StackConfig = Field(default_factory=StackConfig, description="the stacking model (train-stack)")
    retriever: RetrieverConfig = Field(
        default_factory=RetrieverConfig, description="the transformer retriever (train-retriever)"
    )
    scoring: ScoringConfig = Field(default_factory=ScoringConfig, description="top-N scoring (score)")
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig, description="what pipeline runs")
    tracking: TrackingConfig = Field(
        default_factory=TrackingConfig, description="MLflow runs and registered models"
    )

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


def commented_yaml(section: BaseModel, indent: int = 0) -> str:
    """``section`` as YAML, each key followed by its description as a comment.

    The text loads back (``yaml.safe_load``) as ``section.model_dump()``, so it is a valid config
    file. Sections nest; a free-form mapping or a list is written in flow style where it fits
    one line.
    """
    lines: list[str] = []
    for name, field in type(section).model_fields.items():
        _emit(lines, name, getattr(section, name), field.description or "", indent)
    return "".join(f"{line}\n" for line in lines)


def _yaml_line(key: str, value: Any) -> list[str]:
    """``key: value`` in block style; a list or mapping value in flow style where it holds scalars."""
    flow = None if isinstance(value, dict | list) else False
    text = yaml.safe_dump({key: value}, default_flow_style=flow, sort_keys=False, width=10**6)
    return text.rstrip("\n").splitlines()


def _emit(lines: list[str], key: str, value: Any, note: str, indent: int) -> None:
    pad = " " * indent
    comment = f"  # {note}" if note else ""
    sections = isinstance(value, dict) and value and all(isinstance(v, BaseModel) for v in value.values())
    if isinstance(value, BaseModel) or sections:
        head = _yaml_line(key, None)[0].removesuffix(" null")
        lines.append(f"{pad}{head}{comment}")
        if isinstance(value, BaseModel):
            lines.extend(commented_yaml(value, indent + 2).splitlines())
        else:
            for name, sub in value.items():
                _emit(lines, name, sub, "", indent + 2)
        return
    text = _yaml_line(key, value)
    if len(text) == 1:
        lines.append(f"{pad}{text[0]}{comment}")
        return
    if note:
        lines.append(f"{pad}# {note}")
    lines.extend(f"{pad}{line}" for line in text)
