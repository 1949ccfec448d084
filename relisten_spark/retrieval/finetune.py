"""Stage 2 of the retriever: pairwise-logit fine-tuning on the ranker's scores (the rank side and
its inputs; ``relisten finetune-retriever`` is :mod:`relisten_spark.scoring.distil`).

Inputs: the teacher lists (silver.retriever_teacher ``[msno, song_id, retriever_rank,
retriever_logit, ranker_score, part]``, :mod:`relisten_spark.scoring.teacher`) and each teacher
user's history before the holdout cutoff. :func:`write_teacher_shards` writes, per ``part``
(``train`` / ``holdout``), one Parquet row per user ``[msno, items, artists, genres, languages,
sources array<int>, candidates array<int>, ranker array<double>]``: the last ``max_len`` events
encoded with the parent version's item table and the user's list as item indices with the
ranker's scores.

Training (:func:`finetune_worker`, DDP through :func:`~relisten_spark.models.ddp.launch.run_ranks`)
starts from the parent (stage-1) version's weights. One forward pass per batch encodes the
user's history: the output at the last position is the user vector whose logits
``z_i = <u, v_i> / tau`` over the list enter :func:`~relisten_spark.retrieval.losses.
pairwise_logit_loss` (all pairs ``r_i > r_j + margin``), and the earlier positions predict the
history's next items with the stage-1 loss (``retriever.loss``, its negatives), added with
weight ``retriever.finetune.softmax_weight`` so that the catalogue outside the lists is not
forgotten. After every epoch, and once before the first (the parent's own figures), the
agreement with the ranker (:mod:`~relisten_spark.retrieval.agreement`) is measured on the
``holdout`` users; early stopping keeps the epoch with the best ``agreement_ndcg@N``. Rank 0
registers the version (``stage = 2``, ``parent_version``, ``stack_version``).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from torch.nn.parallel import DistributedDataParallel

from relisten_spark.config import Config
from relisten_spark.models import shards
from relisten_spark.models.ddp import worker as ranks
from relisten_spark.models.ddp.job import RankJob
from relisten_spark.models.ddp.launch import run_ranks
from relisten_spark.models.ddp.progress import with_progress
from relisten_spark.retrieval import agreement, losses, nearest
from relisten_spark.retrieval.job import (
    RetrieverParams,
    params_of,
    parquet_files,
    rank_fields,
    read_item_table,
)
from relisten_spark.retrieval.model import Retriever, RetrieverHyper
from relisten_spark.retrieval.predict import RetrieverModel, load_retriever
from relisten_spark.retrieval.sequences import VOCAB_FILE, SequenceSet
from relisten_spark.retrieval.stream import TeacherStream, trim
from relisten_spark.retrieval.worker import ITEMS_FOLDER, negative_sampling, save_retriever
from relisten_spark.runtime import RETRIEVER

log = logging.getLogger(__name__)

STAGE = "finetune-retriever"
PARTS = ("train", "holdout")


# ---- inputs -------------------------------------------------------------------------------------
def write_teacher_shards(
    spark: SparkSession, teacher: DataFrame, history: DataFrame, parent: Path, work: Path
) -> dict[str, str]:
    """Write the teacher users' rows (module doc) under ``work/<part>``; ``{part: folder}``.

    ``teacher``: silver.retriever_teacher rows; ``history``: schemas.EVENTS rows before the
    cutoff; ``parent``: the stage-1 version's registry folder (its item table and vocab)."""
    users = teacher.select("msno").distinct()
    inputs = nearest.retriever_inputs(spark, parent, history.join(users, "msno", "left_semi")).drop("heard")
    items = spark.read.parquet(str(parent / ITEMS_FOLDER)).select("song_id", "item_index")
    entry = F.struct("retriever_rank", "item_index", "ranker_score")
    lists = (
        teacher.join(items, "song_id")
        .groupBy("msno", "part")
        .agg(F.sort_array(F.collect_list(entry)).alias("_l"))
        .select(
            "msno",
            "part",
            F.col("_l.item_index").cast("array<int>").alias("candidates"),
            F.col("_l.ranker_score").cast("array<double>").alias("ranker"),
        )
    )
    rows = inputs.join(lists, "msno")
    out = {}
    for part in PARTS:
        out[part] = str(work / part)
        rows.where(F.col("part") == part).drop("part").coalesce(1).sortWithinPartitions("msno").write.mode(
            "overwrite"
        ).parquet(out[part])
    return out


@dataclass(frozen=True)
class FinetuneParams:
    """The settings of ``retriever.finetune.*`` and the stage-1 loss they mix in."""

    stage1: RetrieverParams  # loss, negatives, temperature of the next-item part
    margin: float
    softmax_weight: float
    epochs: int
    batch_size: int  # global: teacher users per step over all ranks
    learning_rate: float
    patience: int
    list_width: int  # M
    agreement_n: int
    agreement_k: int


@dataclass(frozen=True, kw_only=True)
class FinetuneJob(RankJob):
    """What every rank receives: the parent version's folder and architecture, the item table's
    frequencies, the settings and the row groups of the teacher shards (small, no data)."""

    parent: str
    hyper: RetrieverHyper
    params: FinetuneParams
    item_counts: np.ndarray
    train: tuple[shards.RowGroup, ...]
    holdout: tuple[shards.RowGroup, ...]


def build_finetune_job(
    cfg: Config, parent: Path, folders: dict[str, str], run_id: str, metadata: dict[str, Any]
) -> FinetuneJob:
    """The rank-side description of one fine-tuning of the version at ``parent`` on the shards
    ``folders`` (:func:`write_teacher_shards`)."""
    r, f = cfg.retriever, cfg.retriever.finetune
    model = load_retriever(cfg.models.root, parent.name)
    _, counts = read_item_table(SequenceSet.load(parent))
    params = FinetuneParams(
        stage1=params_of(r),
        margin=f.margin,
        softmax_weight=f.softmax_weight,
        epochs=f.epochs,
        batch_size=f.batch_size,
        learning_rate=f.learning_rate,
        patience=f.early_stopping_patience,
        list_width=f.candidates,
        agreement_n=f.agreement_n,
        agreement_k=f.agreement_k,
    )
    return FinetuneJob(
        parent=str(parent),
        hyper=model.hyper,
        params=params,
        item_counts=counts,
        train=tuple(shards.list_row_groups(parquet_files(folders["train"]))),
        holdout=tuple(shards.list_row_groups(parquet_files(folders["holdout"]))),
        **rank_fields(cfg, Path(folders["train"]).parent, run_id, metadata),
    )


def finetune(job: FinetuneJob, cfg: Config) -> dict[str, Any]:
    """Fine-tune on ``retriever.num_processes`` ranks; rank 0's result ``{version, ...}``."""
    r = cfg.retriever
    return run_ranks(finetune_worker, job, job.error_dir, STAGE, r.num_processes, r.local_mode, r.use_gpu)


# ---- the rank side ------------------------------------------------------------------------------
def finetune_worker(job: FinetuneJob) -> str:
    """Entry point of every rank: fine-tune; rank 0's result as JSON text on every rank."""
    return ranks.run_rank(job.error_dir, lambda rank, state: _train(job, rank, state))


@dataclass
class _Tuning:
    model: Retriever
    ddp: DistributedDataParallel
    optimizer: torch.optim.Optimizer
    train: TeacherStream
    frequency: torch.Tensor
    generator: torch.Generator


def _setup(job: FinetuneJob, rank: int, world: int, device: torch.device) -> _Tuning:
    model = RetrieverModel(job.parent).model.to(device)  # the parent's weights: the warm start
    ddp = ranks.wrap(model, device, forward_sync_buffers=False)
    torch.manual_seed(job.seed + 1 + rank)  # dropout masks differ between ranks
    p = job.params
    optimizer = torch.optim.Adam(model.parameters(), lr=p.learning_rate)
    train = TeacherStream(
        job.train,
        job.hyper.max_len,
        p.list_width,
        batch_rows=max(1, p.batch_size // world),
        rank=rank,
        world=world,
        seed=job.seed,
        shuffle=True,
    )
    return _Tuning(model, ddp, optimizer, train, *negative_sampling(job.item_counts, job.seed, rank, device))


def _step_loss(
    t: _Tuning, job: FinetuneJob, batch: dict[str, torch.Tensor], device: torch.device
) -> torch.Tensor:
    """Pairwise loss of the batch's lists plus ``softmax_weight`` x the stage-1 next-item loss."""
    p, s1 = job.params, job.params.stage1
    tokens = trim(batch["tokens"]).to(device).long()
    listed = batch["candidates"].to(device).long()
    ranker = batch["ranker"].to(device)
    valid = listed > 0
    targets = tokens[:, 0, 1:]
    has_next = tokens[:, 0, :-1] > 0
    positives = targets[has_next]
    negatives = None
    if s1.loss == "full":
        needed = torch.arange(job.hyper.n_items + 1, device=device)
    else:
        negatives = losses.draw_negatives(
            positives,
            job.hyper.n_items,
            s1.uniform_negatives,
            t.frequency,
            t.generator,
            s1.in_batch_negatives,
        )
        needed = losses.candidate_items(positives, negatives, listed[valid])
    hidden, vectors = t.ddp(*tokens.unbind(1), candidates=needed)
    listed_vectors = vectors[torch.searchsorted(needed, listed).clamp(max=len(needed) - 1)]
    z = (hidden[:, -1, None, :] * listed_vectors).sum(-1) / s1.temperature
    loss = losses.pairwise_logit_loss(z, ranker, valid, p.margin)
    if p.softmax_weight and len(positives):
        softmax = losses.next_item_loss(
            s1.loss,
            hidden[:, :-1][has_next],
            positives,
            needed,
            vectors,
            negatives,
            t.frequency,
            s1.temperature,
        )
        loss = loss + p.softmax_weight * softmax
    return loss


def _train_epoch(
    t: _Tuning, job: FinetuneJob, device: torch.device, progress: str | None
) -> tuple[float, float, float]:
    """One pass over this rank's share: loss sum (over batches' users), users, seconds (a
    progress line about once a minute, labelled ``progress``; None: none)."""
    t.ddp.train()
    started = time.perf_counter()
    loss_sum, users = 0.0, 0
    for batch in with_progress(t.train, shards.rows_of, t.train.rows(), progress, "users"):
        loss = _step_loss(t, job, batch, device)
        t.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t.optimizer.step()
        n = len(batch["tokens"])
        loss_sum += float(loss.detach()) * n
        users += n
    return loss_sum, float(users), time.perf_counter() - started


def measure_agreement(
    model: Retriever, job: FinetuneJob, rank: int, world: int, device: torch.device
) -> dict[str, float]:
    """The agreement measures over every ``holdout`` user, the same on every rank."""
    p = job.params
    model.eval()
    stream = TeacherStream(
        job.holdout,
        job.hyper.max_len,
        p.list_width,
        batch_rows=256,
        rank=rank,
        world=world,
        seed=job.seed,
        shuffle=False,
    )
    totals = torch.zeros(3, dtype=torch.float64, device=device)
    with torch.no_grad():
        for batch in stream:
            tokens = trim(batch["tokens"]).to(device).long()
            listed = batch["candidates"].to(device).long()
            z = (model.user_vectors(*tokens.unbind(1))[:, None, :] * model.items(listed)).sum(-1)
            ranker = batch["ranker"].to(device)
            totals += agreement.agreement_sums(z, ranker, listed > 0, p.agreement_n, p.agreement_k)
    dist.all_reduce(totals)
    users = max(float(totals[2].item()), 1.0)
    ndcg, share = agreement.metric_names(p.agreement_n, p.agreement_k)
    return {ndcg: float(totals[0].item()) / users, share: float(totals[1].item()) / users, "users": users}


def _train(job: FinetuneJob, rank: int, state: dict[str, str]) -> str:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = ranks.rank_device(job.threads, job.use_gpu)
    ranks.join_group(job.use_gpu, job.timeout_s, state)
    started = time.perf_counter()
    t = _setup(job, rank, world, device)
    key = agreement.metric_names(job.params.agreement_n, job.params.agreement_k)[0]
    state["stage"] = "measuring the parent"
    before = measure_agreement(t.model, job, rank, world, device)
    history = ranks.History(job.params.patience)
    for epoch in range(job.params.epochs):
        state["stage"] = f"fine-tuning epoch {epoch}"
        t.train.set_epoch(epoch)
        progress = f"fine-tuning epoch {epoch + 1}/{job.params.epochs}" if rank == 0 else None
        loss_sum, users, seconds = _train_epoch(t, job, device, progress)
        (loss_sum, users), seconds = ranks.epoch_totals([loss_sum, users], seconds, device)
        state["stage"] = f"measuring epoch {epoch}"
        measured = measure_agreement(t.model, job, rank, world, device)
        history.epochs.append({"epoch": epoch, "loss": loss_sum / max(users, 1), **measured})
        history.rows += int(users)
        history.train_s += seconds
        if rank == 0:
            log.info(
                "finetune epoch %d/%d loss %.4f held-out %s %.4f (parent %.4f)",
                epoch + 1,
                job.params.epochs,
                loss_sum / max(users, 1),
                key,
                measured[key],
                before[key],
            )
        if history.stop_after(epoch, measured[key], t.model):
            break
    history.finish(t.model, started, world, device)
    result: dict[str, Any] = {}
    if rank == 0:
        state["stage"] = "saving the model"
        result = _register(job, t.model, history, before, device)
    return ranks.share_result(result, rank, state)


def _register(
    job: FinetuneJob, model: Retriever, history: ranks.History, before: dict[str, float], device: torch.device
) -> dict[str, Any]:
    """Save the fine-tuned version (rank 0); its version, the parent's and its agreement figures."""
    best = history.epochs[history.best_epoch]
    metrics = {
        "parent": {k: v for k, v in before.items() if k != "users"},
        "finetuned": {k: v for k, v in best.items() if k not in ("epoch", "loss", "users")},
        "holdout_users": before["users"],
        **history.totals("users"),
    }
    metadata = {
        **job.metadata,
        "model": RETRIEVER,
        "stage": 2,
        "parent_version": Path(job.parent).name,
        "hyper": job.hyper.to_dict(),
        "train_params": asdict(job.params),
        "metrics": metrics,
        "backend": ranks.backend(device.type == "cuda"),
    }
    parent = Path(job.parent)
    version = save_retriever(job.models_root, model, parent / ITEMS_FOLDER, parent / VOCAB_FILE, metadata)
    return {"version": version, **{k: v for k, v in metrics.items() if k != "history"}}
