"""The rank side of train-retriever: what every DDP process runs (started by torchrun inside
``TorchDistributor`` through :func:`relisten_spark.models.ddp.launch.run_ranks`).

Each rank streams its own share of the train shards (:class:`~relisten_spark.retrieval.stream.
SequenceStream`); the global batch is ``retriever.batch_size`` sequences (``// world`` per rank),
so one and two processes take the same steps. A step trims the batch's all-padding positions,
predicts every next item (inputs ``[:-1]``, targets ``[1:]``, positions whose input is a real
event) and applies ``retriever.loss`` (:mod:`~relisten_spark.retrieval.losses`); uniform
negatives come from a generator seeded by (seed, rank), so a run on the CPU is deterministic.

Validation after every epoch ranks the whole catalogue for each ``calib`` user (the user vector
against every item, padding excluded, and the input sequence's items when
``retriever.exclude_heard``): each rank scores its contiguous share, the NDCG@10 / HR@10 /
recall@200 sums are all-reduced, so every rank takes the same early-stopping decision (on
``retriever.early_stopping_metric``). The best epoch's weights are kept. A refit job
(:func:`~relisten_spark.retrieval.job.refit_job`, no calib rows) skips validation, keeps its
last epoch and reports the validated run's figures. Rank 0 saves the
model, its item table and vocab in the registry.

The model starts with each item's bias at its log count among the train targets
(:meth:`~relisten_spark.retrieval.model.Retriever.start_bias_at_popularity`); with
``retriever.mask_heard`` the items a position already heard are no negatives of it.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from relisten_spark.models import registry, shards
from relisten_spark.models.ddp.progress import with_progress
from relisten_spark.models.ddp.worker import (
    History,
    backend,
    epoch_totals,
    join_group,
    rank_device,
    run_rank,
    share_result,
    wrap,
)
from relisten_spark.retrieval import losses
from relisten_spark.retrieval.job import RetrieverJob
from relisten_spark.retrieval.model import Retriever
from relisten_spark.retrieval.sequences import VOCAB_FILE, SequenceSet
from relisten_spark.retrieval.stream import SequenceStream, period_batches, trim
from relisten_spark.runtime import RETRIEVER, RETRIEVER_MODEL_FILE

log = logging.getLogger(__name__)

ITEMS_FOLDER = "items.parquet"  # the item table in a registry version (a Parquet folder)
K = 10  # validation cut-off: NDCG@10, HR@10
RECALL_K = 200  # validation recall@200: the candidates' cut-off
SCORE_CELLS = 1 << 25  # users x items scored at once in validation (128 MB of float32)


def retriever_worker(job: RetrieverJob) -> str:
    """Entry point of every rank: train the retriever; return rank 0's result (JSON text,
    ``{version, val_ndcg@10, ...}``), the same text on every rank."""
    return run_rank(job.error_dir, lambda rank, state: _train(job, rank, state))


@dataclass
class _Training:
    model: Retriever
    ddp: DistributedDataParallel
    optimizer: torch.optim.Optimizer
    train: SequenceStream
    frequency: torch.Tensor  # [n + 1] item frequencies of the train targets (sum 1)
    generator: torch.Generator  # uniform negatives (CPU)


def _setup(job: RetrieverJob, rank: int, world: int, device: torch.device) -> _Training:
    torch.manual_seed(job.seed)  # the same initial weights on every rank
    model = Retriever(job.hyper, torch.from_numpy(job.item_meta)).to(device)
    model.start_bias_at_popularity(torch.from_numpy(job.item_counts), job.params.temperature)
    ddp = wrap(model, device, forward_sync_buffers=False)
    torch.manual_seed(job.seed + 1 + rank)  # dropout masks differ between ranks
    p = job.params
    optimizer: torch.optim.Optimizer
    if p.weight_decay:
        optimizer = torch.optim.AdamW(model.parameters(), lr=p.learning_rate, weight_decay=p.weight_decay)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=p.learning_rate)
    train = SequenceStream(
        job.train,
        job.hyper.max_len + 1,
        batch_rows=max(1, p.batch_size // world),
        rank=rank,
        world=world,
        seed=job.seed,
        shuffle_buffer_rows=job.shuffle_buffer_rows,
    )
    return _Training(
        model, ddp, optimizer, train, *negative_sampling(job.item_counts, job.seed, rank, device)
    )


def negative_sampling(
    item_counts: np.ndarray, seed: int, rank: int, device: torch.device
) -> tuple[torch.Tensor, torch.Generator]:
    """The item frequencies ``[n + 1]`` (sum 1) of ``item_counts`` on ``device`` and this rank's
    seeded generator of uniform negatives (CPU)."""
    counts = torch.from_numpy(item_counts).double()
    frequency = (counts / counts.sum().clamp(min=1)).to(device)
    return frequency, torch.Generator().manual_seed(seed * 1009 + rank)


def window_targets(items: torch.Tensor, window: int, generator: torch.Generator) -> torch.Tensor:
    """Each position's target ``[b, W - 1]`` of left-padded item rows ``[b, W]``: the item at
    ``t + k``, ``k`` drawn uniformly from 1..``window`` (fewer near the end of the row, where
    fewer events follow) with ``generator`` (CPU); ``window`` 1 = the next item.

    Dense all-action training (PinnerFormer): a position learns the user's coming events, not only
    the next one. Padding never follows a real event, so a real position's target is real."""
    if window == 1:
        return items[:, 1:]
    rows, width = items.shape
    at = torch.arange(width - 1)
    span = (width - 1 - at).clamp(max=window)
    step = 1 + (torch.rand((rows, width - 1), generator=generator) * span).long().clamp(max=span - 1)
    return items.gather(1, (at + step).to(items.device))


def _step_loss(t: _Training, job: RetrieverJob, tokens: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The loss of one batch ``tokens`` ``[b, 5, W]`` and its number of predicted positions."""
    inputs = tokens[:, :, :-1]
    targets = window_targets(tokens[:, 0], job.params.target_window, t.generator)
    valid = inputs[:, 0] > 0
    positives = targets[valid]
    p = job.params
    negatives = None
    if p.loss == "full":
        candidates = torch.arange(job.hyper.n_items + 1, device=tokens.device)
    else:
        negatives = losses.draw_negatives(
            positives, job.hyper.n_items, p.uniform_negatives, t.frequency, t.generator, p.in_batch_negatives
        )
        candidates = losses.candidate_items(positives, negatives)
    hidden, vectors = t.ddp(*inputs.unbind(1), candidates=candidates)
    heard = inputs[:, 0] if p.mask_heard else None
    loss = losses.next_item_loss(
        p.loss, hidden[valid], positives, candidates, vectors, negatives, t.frequency, p.temperature, heard
    )
    return loss, len(positives)


def _train_epoch(
    t: _Training, job: RetrieverJob, device: torch.device, progress: str | None
) -> tuple[float, float, float, float]:
    """One pass over this rank's share: loss sum (over positions), positions, sequences, seconds
    (a progress line about once a minute, labelled ``progress``; None: none)."""
    t.ddp.train()
    started = time.perf_counter()
    loss_sum, positions, sequences = 0.0, 0, 0
    for batch in with_progress(t.train, shards.rows_of, t.train.rows(), progress, "sequences"):
        tokens = trim(batch["tokens"]).to(device).long()
        loss, n = _step_loss(t, job, tokens)
        t.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t.optimizer.step()
        loss_sum += float(loss.detach()) * n
        positions += n
        sequences += len(tokens)
    return loss_sum, float(positions), float(sequences), time.perf_counter() - started


def _all_ranks(values: tuple[float, float, float, float], device: torch.device) -> tuple[float, ...]:
    """The epoch over all ranks: the first three summed, the seconds of the slowest."""
    sums, slowest = epoch_totals(list(values[:3]), values[3], device)
    return (*sums, slowest)


def ranking_sums(top: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``[ndcg@k sum, hr@k sum, users]`` of the ranked lists ``top`` ``[b, k]`` (item indices, best
    first) against the ``targets`` ``[b, T]`` (item indices, -1 = none); users without targets
    are left out.

    Binary relevance; IDCG over min(|targets|, k) items.

    >>> s = torch.tensor([[0.0, 3.0, 2.0, 1.0], [0.0, 1.0, 2.0, 3.0]])
    >>> ranking_sums(s.topk(2).indices, torch.tensor([[2, -1], [1, -1]])).tolist()
    [0.6309297535714575, 1.0, 2.0]
    """
    hits = (top[:, :, None] == targets[:, None, :]).any(-1).double()
    discount = 1.0 / torch.log2(torch.arange(2, top.shape[1] + 2, device=top.device, dtype=torch.float64))
    n_relevant = (targets >= 0).sum(1)
    ideal = torch.cumsum(discount, 0)[(n_relevant.clamp(min=1, max=top.shape[1]) - 1)]
    has = n_relevant > 0
    ndcg = (hits * discount).sum(1) / ideal
    hr = hits.amax(1)
    return torch.stack([ndcg[has].sum(), hr[has].sum(), has.sum().double()])


def recall_sums(top: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``[hits, targets]``: how many of the ``targets`` ``[b, T]`` (item indices, -1 = none) are in
    their row's ranked list ``top`` ``[b, k]``, and how many targets there are (their ratio is the
    event recall@k: every target counts once, whoever's it is).

    >>> s = torch.tensor([[0.0, 3.0, 2.0, 1.0], [0.0, 1.0, 2.0, 3.0]])
    >>> recall_sums(s.topk(2).indices, torch.tensor([[2, 3], [1, -1]])).tolist()
    [1.0, 3.0]
    """
    real = targets >= 0
    hits = (targets[:, :, None] == top[:, None, :]).any(-1) & real
    return torch.stack([hits.sum().double(), real.sum().double()])


def validate(
    model: Retriever, job: RetrieverJob, rank: int, world: int, device: torch.device
) -> dict[str, float]:
    """NDCG@10 and HR@10 (per user) and recall@200 (per event) over all ``calib`` users by full
    ranking, the same on every rank."""
    model.eval()
    totals = torch.zeros(5, dtype=torch.float64, device=device)
    rows = max(1, min(1024, SCORE_CELLS // (job.hyper.n_items + 1)))
    with torch.no_grad():
        items = model.item_matrix()
        for tokens, targets in period_batches(job.calib, rank, world, job.hyper.max_len, rows):
            tokens = trim(tokens).to(device)
            scores = model.user_vectors(*tokens.unbind(1)) @ items.T
            scores[:, 0] = -math.inf
            if job.params.exclude_heard:
                scores.scatter_(1, tokens[:, 0], -math.inf)
            targets = targets.to(device)
            top = scores.topk(min(RECALL_K, scores.shape[1]), dim=1).indices  # ranked once, best first
            totals += torch.cat([ranking_sums(top[:, :K], targets), recall_sums(top, targets)])
    dist.all_reduce(totals)
    ndcg, hr, users, hits, events = totals.tolist()
    return {
        f"ndcg@{K}": ndcg / max(users, 1.0),
        f"hr@{K}": hr / max(users, 1.0),
        f"recall@{RECALL_K}": hits / max(events, 1.0),
    }


def _train(job: RetrieverJob, rank: int, state: dict[str, str]) -> str:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = rank_device(job.threads, job.use_gpu)
    join_group(job.use_gpu, job.timeout_s, state)
    started = time.perf_counter()
    t = _setup(job, rank, world, device)
    validating = bool(job.calib)  # a refit (no calib rows) trains its epochs and keeps the last
    history = History(job.params.patience, keep_best=validating)
    for epoch in range(job.params.epochs):
        state["stage"] = f"training epoch {epoch}"
        t.train.set_epoch(epoch)
        progress = f"retriever epoch {epoch + 1}/{job.params.epochs}" if rank == 0 else None
        loss_sum, positions, sequences, seconds = _all_ranks(_train_epoch(t, job, device, progress), device)
        val: dict[str, float] = {}
        if validating:
            state["stage"] = f"validating epoch {epoch}"
            val = validate(t.model, job, rank, world, device)
        rate = sequences / seconds if seconds > 0 else float("nan")
        entry = {"epoch": epoch, "loss": loss_sum / max(positions, 1), **val, "sequences_per_s": rate}
        history.epochs.append({**entry, "seconds": seconds})
        history.rows += int(sequences)
        history.train_s += seconds
        if rank == 0:
            figures = " val " + " ".join(f"{name} {value:.4f}" for name, value in val.items()) if val else ""
            log.info(
                "retriever %s %d/%d loss %.4f%s sequences/s %.0f (%.0f per process) %.1f s",
                "epoch" if validating else "refit epoch",
                epoch + 1,
                job.params.epochs,
                entry["loss"],
                figures,
                rate,
                rate / world,
                seconds,
            )
        # without validation the score is the epoch itself: the last epoch is the best one
        if history.stop_after(epoch, val[job.params.stop_on] if validating else epoch, t.model):
            break
    history.finish(t.model, started, world, device)
    result: dict[str, Any] = {}
    if rank == 0:
        state["stage"] = "saving the model"
        result = _register(job, t.model, history, device)
    return share_result(result, rank, state)


def _register(job: RetrieverJob, model: Retriever, history: History, device: torch.device) -> dict[str, Any]:
    """Save the model in the registry (rank 0); its version and metrics without the history."""
    best = history.epochs[history.best_epoch] if job.calib else job.metadata["validation"]
    metrics = {
        **{f"val_{name}": best[name] for name in (f"ndcg@{K}", f"hr@{K}", f"recall@{RECALL_K}")},
        **history.totals("sequences"),
        "seconds_per_epoch": history.train_s / max(len(history.epochs), 1),
    }
    metadata = {
        **job.metadata,
        "model": RETRIEVER,
        "stage": 1,
        "hyper": job.hyper.to_dict(),
        "train_params": asdict(job.params),
        "metrics": metrics,
        "backend": backend(device.type == "cuda"),
    }
    items = SequenceSet.load(job.sequences).items
    version = save_retriever(job.models_root, model, items, Path(job.sequences) / VOCAB_FILE, metadata)
    return {"version": version, **{k: v for k, v in metrics.items() if k != "history"}}


def save_retriever(
    models_root: str, model: Retriever, items: str | Path, vocab: str | Path, metadata: dict[str, Any]
) -> str:
    """A new version ``models/retriever/<version>/``: ``retriever.pt`` (architecture and weights of
    ``model``), the item table folder ``items`` and the ``vocab`` file copied; its version."""
    state = {k: v.cpu() for k, v in model.state_dict().items()}

    def write(folder: Path) -> None:
        torch.save({"hyper": model.hyper.to_dict(), "state_dict": state}, folder / RETRIEVER_MODEL_FILE)
        shutil.copytree(items, folder / ITEMS_FOLDER)
        shutil.copy(vocab, folder / VOCAB_FILE)

    return registry.save_model(models_root, RETRIEVER, write, metadata)
