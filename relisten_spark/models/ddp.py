"""`relisten train-nets`: JENN and F-ELU-Net trained with DistributedDataParallel on Spark.

Data flow (``run``):

1. Spark: read ``silver.features`` and the manifest's ``in_nn`` rows of ``nets.profile``, add
   ``eval_split`` (evaluation.splits), compute the standardisation statistics (fill value, mean
   and population std of every numeric input over the ``fit`` rows, see
   :func:`fit_statistics`) and the row counts, and materialise the training input as the Delta table
   ``silver/nets_input_<profile>``: ``[idx, msno, song_id, target, eval_split, <inputs>]``,
   partitioned by ``eval_split``, range-partitioned and sorted by ``idx`` into few large
   files with row groups of about ``nets.row_group_rows`` rows.
2. ``TorchDistributor`` (``local_mode`` for one machine, barrier tasks on a cluster;
   ``num_processes`` and ``use_gpu`` from config; gloo on CPU, NCCL on GPU) starts
   :func:`train_worker` on every rank. Each rank streams its own share of the fit row groups
   (:mod:`relisten_spark.models.shards`), so nothing is collected to the driver and memory is
   bounded. The global batch is the preset's (per-rank batch = batch // world), so one and two
   processes train with the same effective batch.
3. Validation = the ``calib`` rows: every rank scores its contiguous share, the (score, label)
   pairs are ``all_gather``-ed in rank order and every rank computes the same exact ROC-AUC
   (sklearn) from the same array, so early stopping decides identically everywhere. The
   gathered array is 16 bytes per validation row.
4. Rank 0 saves each model with its standardisation statistics, input list, config, metrics,
   training time and rows/s in the registry and writes a small result file; a failing rank
   writes its error there too, and torchrun stops the others, so the job ends with that error
   (:class:`TrainingError`), never a hang. Files are exchanged through
   ``<models.root>/.nets-work/<run id>`` (shared storage on a cluster, like the registry).
5. Spark scores the calib / eval / test rows with ``mapInArrow`` (model loaded once per Python
   worker) and writes ``gold.predictions`` (models ``jenn``, ``felu_net``) for the evaluate stage.

Training hyper-parameters (FEATURES.md §3.2): the ``thesis`` preset is the notebook's (K=74,
K0=11, lr0=0.001405365 decayed x0.778385 per epoch, batch 8192, JENN Adam up to 40 epochs with
early stopping patience 3, F-ELU-Net RMSprop 26 fixed epochs). Deviations: early stopping
watches the validation AUC (the issue and the thesis text; the code watched val_loss) and
restores the best epoch; ReduceLROnPlateau is left out (the scheduler overwrote it every epoch);
Adam / RMSprop use Keras's epsilon 1e-7 and RMSprop Keras's rho 0.9. The ``fast`` preset keeps
the architecture with smaller embeddings (K=16, K0=4), batch 512, lr0 0.002 and 6 epochs, for
the demo and tests.
"""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import shutil
import sys
import time
import traceback
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from relisten_spark import lake
from relisten_spark.config import Config, NetsConfig
from relisten_spark.errors import InputError, TrainingError
from relisten_spark.models import registry, shards
from relisten_spark.models.nets import Moments, NetHyper, NetInputs, NetKind, Standardization
from relisten_spark.predictions import write_predictions
from relisten_spark.runs import new_run_id
from relisten_spark.splits import assign_eval_split

log = logging.getLogger(__name__)

KEYS = ("idx", "msno", "song_id", "target")
LABEL = "target"
WORK_DIR = ".nets-work"
_BYTES_PER_ROW_FIXED = 96  # idx, target, and the two raw id strings of a nets_input row
_ROWS_PER_FILE = 1_000_000


@dataclass(frozen=True)
class Preset:
    batch_size: int
    lr0: float
    decay: float
    k_user: int
    k_cat: int
    epochs: Mapping[str, int]
    early_stopping: Mapping[str, bool]


PRESETS = {
    "thesis": Preset(
        batch_size=8192,
        lr0=0.001405365,
        decay=0.778385,
        k_user=74,
        k_cat=11,
        epochs={"jenn": 40, "felu_net": 26},
        early_stopping={"jenn": True, "felu_net": False},
    ),
    "fast": Preset(
        batch_size=512,
        lr0=0.002,
        decay=0.778385,
        k_user=16,
        k_cat=4,
        epochs={"jenn": 6, "felu_net": 6},
        early_stopping={"jenn": True, "felu_net": False},
    ),
}
OPTIMIZERS = {"jenn": "adam", "felu_net": "rmsprop"}


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


@dataclass(frozen=True)
class TrainJob:
    """What every rank receives (pickled by TorchDistributor): small, no data."""

    params: tuple[TrainParams, ...]
    inputs: NetInputs
    stats: Standardization
    fit: tuple[shards.RowGroup, ...]
    calib: tuple[shards.RowGroup, ...]
    seed: int
    shuffle_buffer_rows: int
    threads: int | None
    use_gpu: bool
    timeout_s: int
    models_root: str
    work_dir: str
    metadata: dict[str, Any]


def train_params(cfg: NetsConfig, kind: NetKind, positive_rate: float | None = None) -> TrainParams:
    """Resolve preset + config overrides for ``kind``.

    >>> p = train_params(NetsConfig(preset="thesis"), "felu_net")
    >>> (p.epochs, p.batch_size, p.optimizer, p.patience, p.hyper.k_user, p.hyper.hidden)
    (26, 8192, 'rmsprop', 0, 74, 148)
    """
    preset = PRESETS[cfg.preset]
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
        optimizer=OPTIMIZERS[kind],
        patience=cfg.early_stopping_patience if preset.early_stopping[kind] else 0,
        class_weights=weights,
    )


# ---- Spark side: inputs ---------------------------------------------------------------------
@dataclass(frozen=True)
class PreparedInputs:
    inputs: NetInputs
    stats: Standardization
    path: str  # silver/nets_input_<profile>
    version: int
    features_version: int
    rows: dict[str, int]  # all, fit, calib
    positive_rate: float  # of the fit rows


def nets_input_path(cfg: Config, profile: str) -> str:
    return lake.table_path(cfg.lake.root, "silver", f"nets_input_{profile}")


def read_inputs(spark: SparkSession, cfg: Config, profile: str) -> tuple[NetInputs, DataFrame, int]:
    """The manifest's nets inputs and ``silver.features`` of ``profile`` with them checked."""
    features_path = lake.table_path(cfg.lake.root, "silver", "features")
    manifest_path = lake.table_path(cfg.lake.root, "silver", "feature_manifest")
    for path in (features_path, manifest_path):
        if not lake.exists(path):
            raise InputError(f"no Delta table at {path}: run `relisten features` first")
    manifest = lake.read(spark, manifest_path, where={"profile": profile}).where(F.col("in_nn"))
    rows = [r.asDict() for r in manifest.collect()]  # one row per feature column: small
    if not rows:
        raise InputError(f"silver.feature_manifest has no in_nn columns for profile {profile}")
    inputs = NetInputs.from_manifest(rows, profile)
    features = lake.read(spark, features_path, where={"profile": profile})
    needed = [*KEYS, "split", *inputs.categorical_names, *inputs.numeric_names]
    missing = [c for c in needed if c not in features.columns]
    if missing:
        raise InputError(
            f"silver.features (profile {profile}) lacks column(s) {missing} named by the manifest"
        )
    return inputs, features.select(*needed), lake.version(features_path)


MOMENTS_SCHEMA = "n array<double>, mean array<double>, m2 array<double>, min array<double>"


def column_moments(x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per column of ``x`` (NaN = missing): count, mean, sum of squared deviations, minimum."""
    present = ~np.isnan(x)
    n = present.sum(axis=0).astype(np.float64)
    values = np.where(present, x, 0.0)
    mean = np.divide(values.sum(axis=0), n, out=np.zeros(x.shape[1]), where=n > 0)
    deviation = np.where(present, x - mean, 0.0)
    low = np.where(present, x, np.inf).min(axis=0, initial=np.inf)
    return n, mean, (deviation * deviation).sum(axis=0), low


def merge_moments(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """Chan et al.'s pairwise update: the moments of the union of two row sets.

    >>> x = np.array([[1.0, np.nan], [2.0, 4.0], [4.0, 8.0], [np.nan, 1.0]])
    >>> n, mean, m2, low = merge_moments(column_moments(x[:2]), column_moments(x[2:]))
    >>> n.tolist(), mean.tolist(), (m2 / n).round(6).tolist(), low.tolist()
    ([3.0, 3.0], [2.333333333333333, 4.333333333333333], [1.555556, 8.222222], [1.0, 1.0])
    """
    na, ma, m2a, lowa = a
    nb, mb, m2b, lowb = b
    n = na + nb
    delta = mb - ma
    share = np.divide(nb, n, out=np.zeros_like(n), where=n > 0)
    mean = ma + delta * share
    m2 = m2a + m2b + delta * delta * na * share
    return n, mean, m2, np.minimum(lowa, lowb)


def _partition_moments(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow: one row of per-column moments for the whole partition."""
    total: tuple[np.ndarray, ...] | None = None
    for batch in batches:
        x = np.column_stack(
            [c.to_numpy(zero_copy_only=False).astype(np.float64, copy=False) for c in batch.columns]
        ).reshape(batch.num_rows, batch.num_columns)
        part = column_moments(x)
        total = part if total is None else merge_moments(total, part)
    if total is not None:
        arrays = [pa.array([v.tolist()], pa.list_(pa.float64())) for v in total]
        yield pa.RecordBatch.from_arrays(arrays, names=["n", "mean", "m2", "min"])


def fit_statistics(df: DataFrame, inputs: NetInputs) -> tuple[dict[str, Moments], dict[str, int], float]:
    """The fit-row moments and fill value of every numeric input, the row counts (all, fit,
    calib) and the positive rate of the fit rows.

    ``df``: ``[msno, song_id, eval_split, target, <numeric>...]``; NaN counts as missing. The
    moments come from one vectorised pass (``mapInArrow``: numpy moments per partition, one row
    per partition merged on the driver): a Spark aggregation with thousands of buffer columns
    runs interpreted and took 400 s for 68k rows x 365 inputs here. Row counts are one small
    aggregation; ``user_mean`` / ``song_mean`` fills (the mean over distinct users / songs of
    the fit rows) one grouped aggregation each, over those columns only.
    """
    fit = F.col("eval_split") == "fit"
    row = df.agg(
        F.count(F.lit(1)).alias("all"),
        F.count(F.when(fit, 1)).alias("fit"),
        F.count(F.when(F.col("eval_split") == "calib", 1)).alias("calib"),
        F.avg(F.when(fit, F.col(LABEL).cast("double"))).alias("positive_rate"),
    ).first()
    names = inputs.numeric_names
    empty = np.zeros(len(names))
    n, mean, m2, low = empty, empty, empty, np.full(len(names), np.inf)
    if names:
        columns = df.where(fit).select(*[F.col(c).cast("double").alias(f"c{j}") for j, c in enumerate(names)])
        for part in columns.mapInArrow(_partition_moments, MOMENTS_SCHEMA).collect():  # one row per partition
            n, mean, m2, low = merge_moments(
                (n, mean, m2, low), tuple(np.array(part[k]) for k in part.__fields__)
            )
    entity_means: dict[str, float | None] = {}
    for rule, key in (("user_mean", "msno"), ("song_mean", "song_id")):
        cols = [c.name for c in inputs.numeric if c.fill == rule]
        if cols:
            value = {c: F.nanvl(F.col(c).cast("double"), F.lit(None).cast("double")) for c in cols}
            per_entity = df.where(fit).groupBy(key).agg(*[F.avg(v).alias(c) for c, v in value.items()])
            entity_means.update(per_entity.agg(*[F.avg(c).alias(c) for c in cols]).first().asDict())
    fit_rows = int(row["fit"])
    moments = {}
    for j, c in enumerate(inputs.numeric):
        present = int(n[j])
        mu = float(mean[j]) if present else None
        fill = {"mean": mu, "zero": 0.0, "user_min": float(low[j]) if present else None}.get(
            c.fill, entity_means.get(c.name)
        )
        var = float(m2[j] / present) if present else None
        moments[c.name] = Moments(fit_rows, present, mu, var, fill if fill is not None else 0.0)
    counts = {"all": int(row["all"]), "fit": fit_rows, "calib": int(row["calib"])}
    return moments, counts, float(row["positive_rate"] or 0.0)


def prepare_inputs(spark: SparkSession, cfg: Config, profile: str) -> PreparedInputs:
    """Steps 1 of the module doc: statistics and the materialised ``nets_input_<profile>`` table."""
    inputs, features, features_version = read_inputs(spark, cfg, profile)
    df = assign_eval_split(features, cfg.evaluation)
    moments, counts, positive_rate = fit_statistics(df, inputs)
    if counts["fit"] == 0 or counts["calib"] == 0:
        raise InputError(f"silver.features (profile {profile}) has no fit or no calib rows to train the nets")
    stats = Standardization.from_moments(moments)
    out = df.select(
        F.col("idx").cast("long"),
        F.col("msno").cast("string"),
        F.col("song_id").cast("string"),
        F.col(LABEL).cast("int"),
        "eval_split",
        *[F.col(c).cast("int") for c in inputs.categorical_names],
        *[F.col(c).cast("float") for c in inputs.numeric_names],
    )
    files = max(cfg.nets.num_processes, math.ceil(counts["all"] / _ROWS_PER_FILE))
    out = out.repartitionByRange(files, "idx").sortWithinPartitions("idx")
    path = nets_input_path(cfg, profile)
    width = _BYTES_PER_ROW_FIXED + 4 * (len(inputs.categorical) + len(inputs.numeric))
    with _parquet_block_size(spark, cfg.nets.row_group_rows * width):
        version = lake.write(spark, out, path, partition_by=["eval_split"])
    log.info("nets input %s version %d: %s rows, %d bytes per row", path, version, counts, width)
    return PreparedInputs(inputs, stats, path, version, features_version, counts, positive_rate)


@contextmanager
def _parquet_block_size(spark: SparkSession, size: int) -> Iterator[None]:
    """Set the Parquet row-group size (bytes) of this session's writes for a ``with`` block."""
    key = "parquet.block.size"
    old = spark.conf.get(key, None)
    spark.conf.set(key, str(max(size, 1 << 16)))
    try:
        yield
    finally:
        if old is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, old)


# ---- launching -------------------------------------------------------------------------------
def launch(job: TrainJob, num_processes: int, local_mode: bool, use_gpu: bool) -> dict[str, dict[str, Any]]:
    """Run :func:`train_worker` on ``num_processes`` ranks; return rank 0's result per model.

    Raises :class:`TrainingError` with the first failing rank's error.
    """
    from pyspark.ml.torch.distributor import TorchDistributor

    work = Path(job.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    try:
        distributor = TorchDistributor(num_processes=num_processes, local_mode=local_mode, use_gpu=use_gpu)
        try:
            with _passive_openmp():
                distributor.run(train_worker, job)
        except Exception as exc:
            raise TrainingError(_failure(work, exc)) from exc
        failure = _first_error(work)
        if failure:
            raise TrainingError(failure)
        results = {}
        for params in job.params:
            file = work / f"result-{params.kind}.json"
            if not file.is_file():
                raise TrainingError(f"train-nets: rank 0 wrote no result for {params.kind}")
            results[params.kind] = json.loads(file.read_text())
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextmanager
def _passive_openmp() -> Iterator[None]:
    """Local ranks inherit ``OMP_WAIT_POLICY=PASSIVE`` unless set: spinning OpenMP threads of
    processes sharing few cores slow each step down by orders of magnitude. (On a cluster set
    it with ``spark.executorEnv.OMP_WAIT_POLICY``.)"""
    key = "OMP_WAIT_POLICY"
    if key in os.environ:
        yield
        return
    os.environ[key] = "PASSIVE"
    try:
        yield
    finally:
        os.environ.pop(key, None)


def _first_error(work: Path) -> str | None:
    errors = [json.loads(p.read_text()) for p in work.glob("error-rank*.json")]
    if not errors:
        return None
    first = min(errors, key=lambda e: e["time"])
    return f"train-nets: rank {first['rank']} failed while {first['stage']}: {first['error']}"


def _failure(work: Path, exc: Exception) -> str:
    found = _first_error(work)
    if found:
        return found
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return f"train-nets: distributed training failed: {lines[-1] if lines else type(exc).__name__}"


# ---- rank side ----------------------------------------------------------------------------------
def train_worker(job: TrainJob) -> None:
    """Entry point of every rank (started by torchrun inside TorchDistributor)."""
    import torch.distributed as dist

    rank = int(os.environ.get("RANK", "0"))
    state = {"stage": "starting"}
    _configure_worker_logging(rank)
    try:
        _train_all(job, rank, state)
    except BaseException as exc:
        error = {"rank": rank, "time": time.time(), "stage": state["stage"], "error": _one_line(exc)}
        Path(job.work_dir, f"error-rank{rank}.json").write_text(json.dumps(error))
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


def _train_all(job: TrainJob, rank: int, state: dict[str, str]) -> None:
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    torch.set_num_threads(job.threads or max(1, (os.cpu_count() or 1) // local_world))
    torch.set_flush_denormal(True)  # subnormal Adam/RMSprop states make CPU steps 10-100x slower
    if job.use_gpu:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    state["stage"] = "joining the process group"
    dist.init_process_group(
        backend="nccl" if job.use_gpu else "gloo", timeout=timedelta(seconds=job.timeout_s)
    )
    for params in job.params:
        state["stage"] = f"training {params.kind}"
        result = _train_one(job, params, rank, world, device, state)
        if rank == 0:
            Path(job.work_dir, f"result-{params.kind}.json").write_text(json.dumps(result))
    dist.barrier()


def _train_one(
    job: TrainJob, p: TrainParams, rank: int, world: int, device: Any, state: dict[str, str]
) -> dict:
    import torch
    import torch.distributed as dist
    from torch.nn import functional as F_torch
    from torch.nn.parallel import DistributedDataParallel

    from relisten_spark.models import nets

    started = time.perf_counter()
    torch.manual_seed(job.seed)  # the same initial weights on every rank
    model = nets.build(p.kind, job.inputs, job.stats, p.hyper).to(device)
    ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    torch.manual_seed(job.seed + 1 + rank)  # dropout masks differ between ranks
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
    history: list[dict[str, float]] = []
    best_auc, best_epoch, best_state, waited = -math.inf, -1, None, 0
    total_rows, total_train_s, total_cpu_s = 0, 0.0, 0.0
    for epoch in range(p.epochs):
        state["stage"] = f"training {p.kind} epoch {epoch}"
        lr = p.lr0 * p.decay**epoch
        for group in optimizer.param_groups:
            group["lr"] = lr
        train.set_epoch(epoch)
        ddp.train()
        t0, cpu0 = time.perf_counter(), time.process_time()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        rows = 0
        for batch in train:
            cat, num = batch["cat"].to(device), batch["num"].to(device)
            label = batch["label"].to(device)
            logits = ddp(cat, num)
            bce = F_torch.binary_cross_entropy_with_logits(logits, label, weight=weights[label.long()])
            loss = bce + model.embedding_penalty()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += bce.detach().double() * len(label)
            rows += len(label)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        counters = torch.tensor([float(rows), cpu], dtype=torch.float64, device=device)
        sums = torch.cat([loss_sum.reshape(1), counters])
        dist.all_reduce(sums)  # loss sum, rows and CPU seconds of all ranks
        slowest = torch.tensor([elapsed], dtype=torch.float64, device=device)
        dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
        global_rows, train_s = int(sums[1].item()), float(slowest.item())
        total_rows += global_rows
        total_train_s += train_s
        total_cpu_s += float(sums[2].item())
        state["stage"] = f"validating {p.kind} epoch {epoch}"
        auc = validation_auc(model, val, device, world)
        rate = global_rows / train_s if train_s > 0 else float("nan")
        entry = {
            "epoch": epoch,
            "loss": float(sums[0].item()) / max(global_rows, 1),
            "val_auc": auc,
            "lr": lr,
            "rows_per_s": rate,
            "seconds": train_s,
        }
        history.append(entry)
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
        if auc > best_auc:
            best_auc, best_epoch, waited = auc, epoch, 0
            if p.patience:
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif p.patience:
            waited += 1
            if waited >= p.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    final_auc = best_auc if p.patience else history[-1]["val_auc"]
    peak = torch.tensor([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024], dtype=torch.float64)
    peak = peak.to(device)
    dist.all_reduce(peak, op=dist.ReduceOp.MAX)
    if rank != 0:
        return {}
    rows_per_s = total_rows / total_train_s if total_train_s > 0 else float("nan")
    metrics = {
        "val_auc": final_auc,
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "history": history,
        "train_seconds": time.perf_counter() - started,
        "rows_per_s": rows_per_s,
        "rows_per_s_per_process": rows_per_s / world,
        "rows_per_cpu_s": total_rows / total_cpu_s if total_cpu_s > 0 else float("nan"),
        "world_size": world,
        "peak_rss_mb_per_process": float(peak.item()),
    }
    metadata = {
        **job.metadata,
        "model": p.kind,
        "train_params": asdict(p),
        "inputs": job.inputs.to_dict(),
        "architecture": model.describe(),
        "metrics": metrics,
        "backend": "nccl" if device.type == "cuda" else "gloo",
    }
    cpu_model = model.to("cpu")
    version = registry.save_model(
        job.models_root, p.kind, lambda folder: nets.save(folder, cpu_model, job.stats), metadata
    )
    return {"version": version, **{k: v for k, v in metrics.items() if k != "history"}}


def validation_auc(model: Any, stream: shards.ShardStream, device: Any, world: int) -> float:
    """ROC-AUC over the whole validation set, identical on every rank (see module doc)."""
    import torch
    import torch.distributed as dist
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


# ---- scoring ----------------------------------------------------------------------------------
_MODEL_CACHE: dict[str, Any] = {}
PREDICTION_SCHEMA = "idx long, msno string, song_id string, eval_split string, target int, score double"


def _cached_model(folder: str) -> Any:
    """Load a registry version once per Python worker."""
    if folder not in _MODEL_CACHE:
        import torch

        from relisten_spark.models import nets

        torch.set_num_threads(1)  # one Spark task = one core
        _MODEL_CACHE[folder] = nets.load(folder)
    return _MODEL_CACHE[folder]


def score_frame(df: DataFrame, model_dir: str, inputs: NetInputs) -> DataFrame:
    """Score ``df`` ``[idx, msno, song_id, eval_split, target, <inputs>]`` with a saved net.

    Returns ``[idx, msno, song_id, eval_split, target, score]`` (score = probability).
    """
    cats, nums = inputs.categorical_names, inputs.numeric_names

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from relisten_spark.models import nets

        model = _cached_model(model_dir)
        for batch in batches:
            cat, num = shards.to_arrays(batch, cats, nums)
            probs = nets.predict(model, cat, num) if batch.num_rows else np.zeros(0)
            yield pa.RecordBatch.from_arrays(
                [
                    *(batch.column(c) for c in ("idx", "msno", "song_id", "eval_split", "target")),
                    pa.array(probs),
                ],
                names=["idx", "msno", "song_id", "eval_split", "target", "score"],
            )

    return df.mapInArrow(score, PREDICTION_SCHEMA)


# ---- the stage -----------------------------------------------------------------------------------
def build_job(cfg: Config, prepared: PreparedInputs, run_id: str) -> TrainJob:
    """The rank-side description of one train-nets run over ``prepared`` inputs."""
    fit = tuple(shards.list_row_groups(lake.file_uris(prepared.path, where={"eval_split": "fit"})))
    calib = tuple(shards.list_row_groups(lake.file_uris(prepared.path, where={"eval_split": "calib"})))
    models_root = Path(cfg.models.root).absolute()
    return TrainJob(
        params=tuple(train_params(cfg.nets, kind, prepared.positive_rate) for kind in cfg.nets.models),
        inputs=prepared.inputs,
        stats=prepared.stats,
        fit=fit,
        calib=calib,
        seed=cfg.nets.seed,
        shuffle_buffer_rows=cfg.nets.shuffle_buffer_rows,
        threads=cfg.nets.threads_per_process,
        use_gpu=cfg.nets.use_gpu,
        timeout_s=cfg.nets.collective_timeout_s,
        models_root=str(models_root),
        work_dir=str(models_root / WORK_DIR / f"{run_id}-{uuid.uuid4().hex[:6]}"),
        metadata={
            "run_id": run_id,
            "profile": cfg.nets.profile,
            "split_mode": cfg.evaluation.split,
            "config": cfg.model_dump(mode="json"),
            "config_hash": cfg.digest(),
            "features_version": prepared.features_version,
            "nets_input": {"path": prepared.path, "version": prepared.version},
            "rows": prepared.rows,
            "positive_rate": prepared.positive_rate,
            "standardization": prepared.stats.to_dict(),
        },
    )


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    """`relisten train-nets`: train the configured nets on ``nets.profile``, write predictions."""
    profile = cfg.nets.profile
    run_id = new_run_id("train-nets")
    prepared = prepare_inputs(spark, cfg, profile)
    job = build_job(cfg, prepared, run_id)
    log.info(
        "train-nets: %s on profile %s, %d process(es)", list(cfg.nets.models), profile, cfg.nets.num_processes
    )
    results = launch(job, cfg.nets.num_processes, cfg.nets.local_mode, cfg.nets.use_gpu)
    holdout = lake.read(spark, prepared.path).where(F.col("eval_split") != "fit")
    summary: dict[str, Any] = {"profile": profile, "run_id": run_id, "rows": prepared.rows}
    for kind, result in results.items():
        folder = str(registry.resolve(job.models_root, kind, result["version"]))  # absolute
        preds = score_frame(holdout, folder, prepared.inputs).withColumn(
            "split_mode", F.lit(cfg.evaluation.split)
        )
        write_predictions(spark, cfg, preds, kind, result["version"], profile, run_id)
        summary[kind] = {
            k: result[k]
            for k in ("version", "val_auc", "epochs_run", "rows_per_s_per_process", "train_seconds")
        }
    return summary
