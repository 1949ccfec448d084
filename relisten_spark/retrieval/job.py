"""What every rank of a train-retriever run receives: the architecture, the training settings,
the item table and frequencies, and the row groups of the sequence shards (small, no data)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from relisten_spark.config import Config, RetrieverConfig
from relisten_spark.models import shards
from relisten_spark.models.ddp.job import RankJob, run_metadata
from relisten_spark.retrieval.losses import LossName
from relisten_spark.retrieval.model import RetrieverHyper
from relisten_spark.retrieval.sequences import SequenceSet


@dataclass(frozen=True)
class RetrieverParams:
    """The training settings of ``retriever.*`` (besides the architecture)."""

    loss: LossName
    uniform_negatives: int
    in_batch_negatives: int | None  # None = every position's next item
    temperature: float
    epochs: int
    batch_size: int  # global: sequences per step over all ranks
    target_window: int  # a position's target: one of its next target_window events (1 = the next)
    learning_rate: float
    weight_decay: float
    patience: int  # 0 = all epochs (the best epoch's weights are kept either way)
    stop_on: str  # the validation metric that picks the best epoch: "ndcg@10" or "recall@200"
    exclude_heard: bool
    mask_heard: bool  # a position's heard items are no negatives of it


@dataclass(frozen=True, kw_only=True)
class RetrieverJob(RankJob):
    """What every rank receives (pickled by TorchDistributor).

    ``item_meta`` ``[n_items + 1, 3]`` int32 (artist, genre, language per item index) and
    ``item_counts`` ``[n_items + 1]`` (occurrences among the train targets) are the item table's
    columns; ``sequences`` is the work folder whose ``items.parquet`` and ``vocab.json`` rank 0
    copies into the registry.
    """

    hyper: RetrieverHyper
    params: RetrieverParams
    item_meta: np.ndarray
    item_counts: np.ndarray
    train: tuple[shards.RowGroup, ...]
    calib: tuple[shards.RowGroup, ...]
    sequences: str


def hyper_of(cfg: RetrieverConfig, seqs: SequenceSet) -> RetrieverHyper:
    """The architecture of ``retriever.*`` over the vocabulary of ``seqs``."""
    v = seqs.vocab
    return RetrieverHyper(
        n_items=v.items - 1,
        artists=v.artists,
        genres=v.genres,
        languages=v.languages,
        sources=v.sources,
        max_len=v.max_len,
        hidden=cfg.hidden,
        layers=cfg.layers,
        heads=cfg.heads,
        inner=cfg.inner,
        dropout=cfg.dropout,
        item_bias=cfg.item_bias,
    )


def params_of(cfg: RetrieverConfig) -> RetrieverParams:
    """The training settings of ``retriever.*``."""
    return RetrieverParams(
        loss=cfg.loss,
        uniform_negatives=cfg.uniform_negatives,
        in_batch_negatives=cfg.in_batch_negatives,
        temperature=cfg.temperature,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        patience=cfg.early_stopping_patience,
        stop_on=cfg.early_stopping_metric,
        exclude_heard=cfg.exclude_heard,
        mask_heard=cfg.mask_heard,
        target_window=cfg.target_window,
    )


def read_item_table(seqs: SequenceSet, counts: str = "item_count") -> tuple[np.ndarray, np.ndarray]:
    """``item_meta`` ``[n + 1, 3]`` and ``item_counts`` ``[n + 1]`` (column ``counts``) from
    ``items.parquet``, by index."""
    table = pq.read_table(seqs.items, columns=["item_index", "artist", "genre", "language", counts])
    index = table.column("item_index").to_numpy()
    n = seqs.vocab.items
    if not np.array_equal(np.sort(index), np.arange(n)):
        raise ValueError(f"{seqs.items} must hold item indices 0..{n - 1} once each")
    meta = np.zeros((n, 3), dtype=np.int32)
    frequency = np.zeros(n, dtype=np.float64)
    for j, name in enumerate(("artist", "genre", "language")):
        meta[index, j] = table.column(name).to_numpy()
    frequency[index] = table.column(counts).to_numpy()
    return meta, frequency


def parquet_files(folder: str) -> list[str]:
    """The Parquet part files of a folder written by Spark."""
    return sorted(str(p) for p in Path(folder).glob("*.parquet"))


def rank_fields(cfg: Config, work: str | Path, run_id: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """The :class:`~relisten_spark.models.ddp.job.RankJob` fields of a retriever stage from
    ``retriever.*``: its ranks leave their errors under ``work``."""
    r = cfg.retriever
    return {
        "seed": r.seed,
        "shuffle_buffer_rows": r.shuffle_buffer_rows,
        "threads": r.threads_per_process,
        "use_gpu": r.use_gpu,
        "timeout_s": r.collective_timeout_s,
        "models_root": str(Path(cfg.models.root).absolute()),
        "error_dir": str(Path(work) / f"ranks-{uuid.uuid4().hex[:6]}"),
        "metadata": {**run_metadata(cfg, run_id), **metadata},
    }


def build_job(cfg: Config, seqs: SequenceSet, run_id: str, metadata: dict[str, Any]) -> RetrieverJob:
    """The rank-side description of one train-retriever run over the sequences ``seqs``."""
    r = cfg.retriever
    meta, counts = read_item_table(seqs)
    return RetrieverJob(
        hyper=hyper_of(r, seqs),
        params=params_of(r),
        item_meta=meta,
        item_counts=counts,
        train=tuple(shards.list_row_groups(parquet_files(seqs.train))),
        calib=tuple(shards.list_row_groups(parquet_files(seqs.calib))),
        sequences=seqs.root,
        **rank_fields(cfg, seqs.root, run_id, metadata),
    )


def refit_job(job: RetrieverJob, seqs: SequenceSet, validated: dict[str, Any]) -> RetrieverJob:
    """``job`` again from the start on the ``refit`` rows (``fit`` and ``calib`` events) and their
    item counts, for the ``best_epoch + 1`` epochs of the ``validated`` run's result, without
    validation (the calib rows are trained on); its metadata names that run's version and keeps
    its validation figures, which the refit reports."""
    meta, counts = read_item_table(seqs, "refit_count")
    figures = {k.removeprefix("val_"): v for k, v in validated.items() if k.startswith("val_")}
    return replace(
        job,
        params=replace(job.params, epochs=validated["best_epoch"] + 1, patience=0),
        item_meta=meta,
        item_counts=counts,
        train=tuple(shards.list_row_groups(parquet_files(seqs.refit))),
        calib=(),
        error_dir=f"{job.error_dir}-refit",
        metadata={**job.metadata, "refit_of": validated["version"], "validation": figures},
    )
