"""The rank side of train-nets: what every DDP process runs (started by torchrun inside
``TorchDistributor``, :mod:`relisten_spark.models.ddp.launch`).

Each rank streams its own share of the fit row groups (:mod:`relisten_spark.models.shards`), so
nothing is collected to the driver and memory is bounded. The global batch is the preset's
(per-rank batch = batch // world), so one and two processes train with the same effective
batch. Validation = the ``calib`` rows: every rank scores its contiguous share, the (score,
label) pairs are ``all_gather``-ed in rank order and every rank computes the same exact ROC-AUC
(sklearn) from the same array, so early stopping decides identically everywhere. The gathered
array is 16 bytes per validation row. Rank 0 saves each model with its standardisation
statistics, input list, config, metrics, training time and rows/s in the registry.
"""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn import functional as nnf
from torch.nn.parallel import DistributedDataParallel

from relisten_spark.models import nets, registry, shards
from relisten_spark.models.ddp.inputs import LABEL
from relisten_spark.models.ddp.job import TrainJob, TrainParams
from relisten_spark.models.ddp.progress import with_progress

log = logging.getLogger(__name__)

ERROR_FILES = "error-rank*.json"


def train_worker(job: TrainJob) -> str:
    """Entry point of every rank: train every net of ``job``; return rank 0's results
    ``{net: {version, val_auc, ...}}`` as JSON text, the same text on every rank."""
    return run_rank(job.error_dir, lambda rank, state: _train_all(job, rank, state))


def run_rank(error_dir: str, body: Callable[[int, dict[str, str]], str]) -> str:
    """Run ``body(rank, state)`` on this rank with worker logging; on failure leave the rank's
    ``state["stage"]`` and one-line error in ``<error_dir>/error-rank<r>.json`` (read by
    :mod:`~relisten_spark.models.ddp.launch`) and re-raise; always leave the process group."""
    rank = int(os.environ.get("RANK", "0"))
    state = {"stage": "starting"}
    _configure_worker_logging(rank)
    try:
        return body(rank, state)
    except BaseException as exc:
        error = {"rank": rank, "time": time.time(), "stage": state["stage"], "error": _one_line(exc)}
        Path(error_dir, f"error-rank{rank}.json").write_text(json.dumps(error))
        log.error("rank %d failed while %s:\n%s", rank, state["stage"], traceback.format_exc())
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _configure_worker_logging(rank: int) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stdout,
            format=f"%(asctime)s %(levelname)s rank{rank} %(name)s: %(message)s",
            datefmt="%H:%M:%S",
        )


def rank_device(threads: int | None, use_gpu: bool) -> torch.device:
    """This rank's device (its local GPU, or the CPU), with ``threads`` torch threads (None = the
    machine's cores shared out between the local ranks)."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // local_world))
    torch.set_flush_denormal(True)  # subnormal Adam/RMSprop states make CPU steps 10-100x slower
    if not use_gpu:
        return torch.device("cpu")
    device = torch.device("cuda", local_rank)
    torch.cuda.set_device(device)
    return device


def _train_all(job: TrainJob, rank: int, state: dict[str, str]) -> str:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = rank_device(job.threads, job.use_gpu)
    join_group(job.use_gpu, job.timeout_s, state)
    results: dict[str, dict[str, Any]] = {}
    for params in job.params:
        state["stage"] = f"training {params.kind}"
        result = _train_one(job, params, rank, world, device, state)
        if rank == 0:
            results[params.kind] = result
    return share_result(results, rank, state)


# ---- one net ------------------------------------------------------------------------------------
@dataclass
class _Training:
    """One net's model (plain and DDP-wrapped), optimizer and data streams on this rank."""

    model: nets.RelistenNet
    ddp: DistributedDataParallel
    optimizer: torch.optim.Optimizer
    train: shards.ShardStream
    val: shards.ShardStream
    weights: torch.Tensor  # class weights (negative, positive)


@dataclass
class History:
    """A DDP training's per-epoch entries, the best validation score so far (its epoch and, when
    ``keep_best``, its weights), early-stopping patience and totals (rows or sequences, the
    slowest rank's training seconds, the CPU seconds). Shared by train-nets and the retriever."""

    patience: int  # 0 = no early stopping
    keep_best: bool = True
    epochs: list[dict[str, float]] = field(default_factory=list)
    best: float = -math.inf
    best_epoch: int = -1
    best_state: dict[str, torch.Tensor] | None = None
    waited: int = 0
    rows: int = 0
    train_s: float = 0.0
    cpu_s: float = 0.0
    seconds: float = 0.0  # the whole training, set by finish()
    world: int = 1
    peak_mb: float = 0.0

    def finish(self, model: torch.nn.Module, started: float, world: int, device: torch.device) -> None:
        """End of training on every rank: the best weights back in ``model``, the wall time since
        ``started`` (perf_counter), the world size and the largest peak memory of any rank."""
        self.restore_best(model)
        self.seconds, self.world, self.peak_mb = time.perf_counter() - started, world, peak_rss_mb(device)

    def rate(self) -> float:
        """Rows (or sequences) per second of training over all ranks."""
        return self.rows / self.train_s if self.train_s > 0 else float("nan")

    def totals(self, unit: str) -> dict[str, Any]:
        """The metrics every registered version reports: best epoch, epochs run, per-epoch
        history, seconds, ``<unit>_per_s`` (all ranks and per process), world size, peak memory."""
        return {
            "best_epoch": self.best_epoch,
            "epochs_run": len(self.epochs),
            "history": self.epochs,
            "train_seconds": self.seconds,
            f"{unit}_per_s": self.rate(),
            f"{unit}_per_s_per_process": self.rate() / self.world,
            "world_size": self.world,
            "peak_rss_mb_per_process": self.peak_mb,
        }

    def stop_after(self, epoch: int, score: float, model: torch.nn.Module) -> bool:
        """Record ``epoch``'s validation ``score``; True when early stopping ends the training."""
        if score > self.best:
            self.best, self.best_epoch, self.waited = score, epoch, 0
            if self.keep_best:
                self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return False
        if not self.patience:
            return False
        self.waited += 1
        return self.waited >= self.patience

    def restore_best(self, model: torch.nn.Module) -> None:
        """Load the best epoch's weights into ``model`` (when they were kept)."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)


def join_group(use_gpu: bool, timeout_s: int, state: dict[str, str]) -> None:
    """Join the process group: NCCL on GPUs, gloo on the CPU."""
    state["stage"] = "joining the process group"
    dist.init_process_group(backend=backend(use_gpu), timeout=timedelta(seconds=timeout_s))


def backend(use_gpu: bool) -> str:
    return "nccl" if use_gpu else "gloo"


def wrap(model: torch.nn.Module, device: torch.device, **options: Any) -> DistributedDataParallel:
    """``model`` wrapped for DDP on ``device`` (``options`` go to DistributedDataParallel)."""
    return DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None, **options
    )


def epoch_totals(sums: list[float], seconds: float, device: torch.device) -> tuple[list[float], float]:
    """An epoch over all ranks: ``sums`` summed, ``seconds`` of the slowest rank."""
    summed = torch.tensor(sums, dtype=torch.float64, device=device)
    dist.all_reduce(summed)
    slowest = torch.tensor([seconds], dtype=torch.float64, device=device)
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
    return summed.tolist(), float(slowest.item())


def share_result(result: Any, rank: int, state: dict[str, str]) -> str:
    """Rank 0's ``result`` as JSON text, returned on every rank (see launch)."""
    state["stage"] = "sharing the result"
    shared = [json.dumps(result) if rank == 0 else None]
    dist.broadcast_object_list(shared, src=0)
    return str(shared[0])


def _setup(job: TrainJob, p: TrainParams, rank: int, world: int, device: torch.device) -> _Training:
    torch.manual_seed(job.seed)  # the same initial weights on every rank
    model = nets.build(p.kind, job.inputs, job.stats, p.hyper).to(device)
    ddp = wrap(model, device)
    torch.manual_seed(job.seed + 1 + rank)  # dropout masks differ between ranks
    optimizer: torch.optim.Optimizer
    if p.optimizer == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=p.lr0, eps=1e-7)  # Keras defaults
    else:
        optimizer = torch.optim.RMSprop(model.parameters(), lr=p.lr0, alpha=0.9, eps=1e-7)
    local_batch = max(1, p.batch_size // world)
    cats, nums = job.inputs.categorical_names, job.inputs.numeric_names
    train = shards.ShardStream(
        job.fit,
        cats,
        nums,
        label=LABEL,
        batch_rows=local_batch,
        rank=rank,
        world=world,
        seed=job.seed,
        shuffle=True,
        drop_last=True,
        shuffle_buffer_rows=job.shuffle_buffer_rows,
    )
    val = shards.ShardStream(
        job.calib,
        cats,
        nums,
        label=LABEL,
        batch_rows=max(local_batch, 4096),
        rank=rank,
        world=world,
        shuffle_buffer_rows=job.shuffle_buffer_rows,
    )
    weights = torch.tensor(p.class_weights or (1.0, 1.0), device=device)
    return _Training(model, ddp, optimizer, train, val, weights)


def _train_epoch(
    t: _Training, device: torch.device, progress: str | None
) -> tuple[torch.Tensor, int, float, float]:
    """One pass over this rank's fit share: the BCE loss sum, rows, seconds and CPU seconds (a
    progress line about once a minute, labelled ``progress``; None: none)."""
    t.ddp.train()
    t0, cpu0 = time.perf_counter(), time.process_time()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    rows = 0
    for batch in with_progress(t.train, shards.rows_of, t.train.rows(), progress, "rows"):
        cat, num = batch["cat"].to(device), batch["num"].to(device)
        label = batch["label"].to(device)
        logits = t.ddp(cat, num)
        bce = nnf.binary_cross_entropy_with_logits(logits, label, weight=t.weights[label.long()])
        loss = bce + t.model.embedding_penalty()
        t.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t.optimizer.step()
        loss_sum += bce.detach().double() * len(label)
        rows += len(label)
    return loss_sum, rows, time.perf_counter() - t0, time.process_time() - cpu0


def _all_ranks(
    loss_sum: torch.Tensor, rows: int, seconds: float, cpu: float, device: torch.device
) -> tuple[float, int, float, float]:
    """The epoch over all ranks: loss sum, rows and CPU seconds summed, seconds of the slowest."""
    (loss, total, cpu_s), slowest = epoch_totals([float(loss_sum.item()), float(rows), cpu], seconds, device)
    return loss, int(total), cpu_s, slowest


def peak_rss_mb(device: torch.device) -> float:
    """The largest peak resident memory (MB) of any rank."""
    peak = torch.tensor([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024], dtype=torch.float64)
    peak = peak.to(device)
    dist.all_reduce(peak, op=dist.ReduceOp.MAX)
    return float(peak.item())


def _train_one(
    job: TrainJob, p: TrainParams, rank: int, world: int, device: torch.device, state: dict[str, str]
) -> dict[str, Any]:
    """Train net ``p.kind``; rank 0 registers it and returns its version and metrics ({} elsewhere)."""
    started = time.perf_counter()
    t = _setup(job, p, rank, world, device)
    history = History(p.patience, keep_best=bool(p.patience))
    for epoch in range(p.epochs):
        state["stage"] = f"training {p.kind} epoch {epoch}"
        lr = p.lr0 * p.decay**epoch
        for group in t.optimizer.param_groups:
            group["lr"] = lr
        t.train.set_epoch(epoch)
        progress = f"{p.kind} epoch {epoch + 1}/{p.epochs}" if rank == 0 else None
        loss_sum, rows, cpu_s, train_s = _all_ranks(*_train_epoch(t, device, progress), device)
        history.rows += rows
        history.train_s += train_s
        history.cpu_s += cpu_s
        state["stage"] = f"validating {p.kind} epoch {epoch}"
        auc = validation_auc(t.model, t.val, device, world)
        rate = rows / train_s if train_s > 0 else float("nan")
        entry = {"epoch": epoch, "loss": loss_sum / max(rows, 1), "val_auc": auc, "lr": lr}
        history.epochs.append({**entry, "rows_per_s": rate, "seconds": train_s})
        if rank == 0:
            log.info(
                "%s epoch %d/%d loss %.5f val_auc %.5f lr %.6f rows/s %.0f (%.0f per process) %.1f s",
                p.kind,
                epoch + 1,
                p.epochs,
                entry["loss"],
                auc,
                lr,
                rate,
                rate / world,
                train_s,
            )
        if history.stop_after(epoch, auc, t.model):
            break
    history.finish(t.model, started, world, device)
    if rank != 0:
        return {}
    return _register(job, p, t.model, history, device)


def _register(
    job: TrainJob, p: TrainParams, model: nets.RelistenNet, history: History, device: torch.device
) -> dict[str, Any]:
    """Save the trained net in the registry (rank 0); its version and metrics without the history."""
    metrics = {
        "val_auc": history.best if p.patience else history.epochs[-1]["val_auc"],
        **history.totals("rows"),
        "rows_per_cpu_s": history.rows / history.cpu_s if history.cpu_s > 0 else float("nan"),
    }
    metadata = {
        **job.metadata,
        "model": p.kind,
        "train_params": asdict(p),
        "inputs": job.inputs.to_dict(),
        "architecture": model.describe(),
        "metrics": metrics,
        "backend": backend(device.type == "cuda"),
    }
    cpu_model = model.to("cpu")
    version = registry.save_model(
        job.models_root, p.kind, lambda folder: nets.save(folder, cpu_model, job.stats), metadata
    )
    return {"version": version, **{k: v for k, v in metrics.items() if k != "history"}}


def validation_auc(model: Any, stream: shards.ShardStream, device: torch.device, world: int) -> float:
    """ROC-AUC over the whole validation set, identical on every rank (see module doc)."""
    from sklearn.metrics import roc_auc_score

    for buffer in model.buffers():  # BatchNorm statistics of rank 0, so all ranks score alike
        dist.broadcast(buffer, 0)
    model.eval()
    parts = []
    with torch.no_grad():
        for batch in stream:
            logits = model(batch["cat"].to(device), batch["num"].to(device)).double()
            parts.append(torch.stack([logits, batch["label"].to(device).double()], dim=1))
    local = torch.cat(parts) if parts else torch.zeros((0, 2), dtype=torch.float64, device=device)
    sizes = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([len(local)], device=device))
    longest = max(int(s.item()) for s in sizes)
    padded = torch.zeros((longest, 2), dtype=torch.float64, device=device)
    padded[: len(local)] = local
    gathered = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    both = torch.cat([g[: int(s.item())] for g, s in zip(gathered, sizes, strict=True)]).cpu().numpy()
    labels = both[:, 1]
    if labels.min(initial=1) == labels.max(initial=0):
        return float("nan")
    return float(roc_auc_score(labels, both[:, 0]))
