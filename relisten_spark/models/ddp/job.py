"""What every rank of a train-nets run receives: per net its training parameters (the preset
with the config's overrides), and the shared inputs, statistics and row groups."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relisten_spark.config import Config, NetsConfig
from relisten_spark.models import shards
from relisten_spark.models.ddp.inputs import PreparedInputs, row_groups
from relisten_spark.models.nets import NetHyper, NetInputs, NetKind, Standardization
from relisten_spark.models.presets import NET_OPTIMIZERS, NET_PRESETS


@dataclass(frozen=True)
class TrainParams:
    """Everything one net's training needs besides the data."""

    kind: NetKind
    hyper: NetHyper
    epochs: int
    batch_size: int
    lr0: float
    decay: float
    optimizer: str
    patience: int  # 0 = no early stopping (fixed epochs)
    class_weights: tuple[float, float] | None


@dataclass(frozen=True, kw_only=True)
class RankJob:
    """The settings every DDP job's ranks share (train-nets, the retriever's stages)."""

    seed: int
    shuffle_buffer_rows: int
    threads: int | None
    use_gpu: bool
    timeout_s: int
    models_root: str
    error_dir: str  # where a failing rank leaves its error (relisten_spark.models.ddp.launch)
    metadata: dict[str, Any]


def run_metadata(cfg: Config, run_id: str) -> dict[str, Any]:
    """The metadata every trained version carries: its run, the config and the config's hash."""
    return {"run_id": run_id, "config": cfg.model_dump(mode="json"), "config_hash": cfg.digest()}


@dataclass(frozen=True, kw_only=True)
class TrainJob(RankJob):
    """What every rank receives (pickled by TorchDistributor): small, no data."""

    params: tuple[TrainParams, ...]
    inputs: NetInputs
    stats: Standardization
    fit: tuple[shards.RowGroup, ...]
    calib: tuple[shards.RowGroup, ...]


def train_params(cfg: NetsConfig, kind: NetKind, positive_rate: float | None = None) -> TrainParams:
    """Resolve preset + config overrides for ``kind``.

    >>> p = train_params(NetsConfig(preset="thesis"), "felu_net")
    >>> (p.epochs, p.batch_size, p.optimizer, p.patience, p.hyper.k_user, p.hyper.hidden)
    (26, 8192, 'rmsprop', 0, 74, 148)
    """
    preset = NET_PRESETS[cfg.preset]
    hyper = NetHyper(
        k_user=preset.k_user,
        k_cat=preset.k_cat,
        hidden=cfg.hidden,
        activation=cfg.activation,
        batchnorm=cfg.batchnorm,
        block_dropout=cfg.block_dropout,
    )
    weights = None
    if cfg.class_weights and positive_rate is not None and 0 < positive_rate < 1:
        weights = (0.5 / (1 - positive_rate), 0.5 / positive_rate)  # "balanced": n / (2 n_y)
    return TrainParams(
        kind=kind,
        hyper=hyper,
        epochs=cfg.epochs or preset.epochs[kind],
        batch_size=cfg.batch_size or preset.batch_size,
        lr0=cfg.learning_rate or preset.lr0,
        decay=preset.decay,
        optimizer=NET_OPTIMIZERS[kind],
        patience=cfg.early_stopping_patience if preset.early_stopping[kind] else 0,
        class_weights=weights,
    )


def build_job(cfg: Config, prepared: PreparedInputs, run_id: str) -> TrainJob:
    """The rank-side description of one train-nets run over ``prepared`` inputs."""
    return TrainJob(
        params=tuple(train_params(cfg.nets, kind, prepared.positive_rate) for kind in cfg.nets.models),
        inputs=prepared.inputs,
        stats=prepared.stats,
        fit=row_groups(prepared, "fit"),
        calib=row_groups(prepared, "calib"),
        seed=cfg.nets.seed,
        shuffle_buffer_rows=cfg.nets.shuffle_buffer_rows,
        threads=cfg.nets.threads_per_process,
        use_gpu=cfg.nets.use_gpu,
        timeout_s=cfg.nets.collective_timeout_s,
        models_root=str(Path(cfg.models.root).absolute()),
        error_dir=str(Path(prepared.path).parent / f"ranks-{uuid.uuid4().hex[:6]}"),
        metadata={
            **run_metadata(cfg, run_id),
            "profile": cfg.nets.profile,
            "split_mode": cfg.evaluation.split,
            "features_version": prepared.features_version,
            "rows": prepared.rows,
            "positive_rate": prepared.positive_rate,
            "standardization": prepared.stats.to_dict(),
        },
    )
