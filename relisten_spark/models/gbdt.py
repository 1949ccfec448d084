"""LightGBM on Spark: data-parallel training in barrier tasks, holdout predictions, registry.

``relisten train-gbdt`` (:func:`run`) reads ``silver.features`` for ``gbdt.profile``, takes the
model columns from ``silver.feature_manifest`` (``in_gbdt``), splits the rows with
:func:`~relisten_spark.splits.assign_eval_split`, trains on ``fit`` rows, writes
the model to ``<models.root>/lightgbm/<version>/`` and the ``calib``/``eval``/``test``
predictions to ``gold.predictions``. The popularity baseline of the same rows is written too.

Barrier training (:func:`train_barrier`, the default backend), the way SynapseML and
``xgboost.spark`` do it:

1. the fit rows are shuffled into exactly ``gbdt.num_tasks`` partitions (row ``idx`` modulo
   the number of tasks); when early stopping is on, every partition also gets a copy of all
   ``calib`` rows (see "Early stopping");
2. one barrier stage (``mapInArrow(..., barrier=True)``) runs a task per partition. Each task
   turns its Arrow batches into NumPy blocks, binds a free port and shares
   ``host:port:rows`` through ``BarrierTaskContext.allGather``. Tasks without rows stay out
   of LightGBM's ``machines`` list and return nothing (an empty member would break the
   network); the others call ``lightgbm.train`` with ``tree_learner`` data or voting,
   ``num_machines``, ``machines``, ``local_listen_port``, ``time_out`` (from
   ``gbdt.network_timeout_s``), ``pre_partition=True`` and ``num_threads`` =
   ``spark.task.cpus``. The ``Dataset`` is built inside ``lightgbm.train`` after the network
   is up, so bin boundaries are agreed across tasks;
3. the first member (rank 0) returns the model string (in chunks of 8 MB); every member
   returns a JSON line with its row counts, trees and best iteration, which the driver checks
   for agreement.

Early stopping: when ``gbdt.early_stopping_rounds`` > 0 every rank holds the *whole* calib
set (the same rows in ``idx`` order), so every rank computes the same validation metric on
the same model and stops at the same round; LightGBM itself does not reduce validation
metrics across machines. This costs ``num_tasks`` copies of the calib rows (10% of train by
default); with very large calib sets, turn early stopping off (the thesis preset has none).

Failures: a task that raises fails the barrier stage; Spark then kills the other tasks (even
when they are blocked in LightGBM's socket calls) and the driver raises
:class:`~relisten_spark.errors.TrainingError` with the worker's message. Local masters never
retry a task. On a cluster (``spark.task.maxFailures`` > 1) Spark may resubmit the whole
barrier stage, at most ``spark.stage.maxConsecutiveAttempts`` times; every attempt fails the
same way on a deterministic error, so the job still ends, only that many attempts later.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from relisten_spark import lake
from relisten_spark.config import Config
from relisten_spark.errors import ConfigError, InputError, TrainingError
from relisten_spark.metrics import binary_metrics
from relisten_spark.models import popularity, presets, registry
from relisten_spark.models.presets import TrainSettings
from relisten_spark.predictions import write_predictions
from relisten_spark.runs import new_run_id
from relisten_spark.splits import assign_eval_split

log = logging.getLogger(__name__)

MODEL_NAME = "lightgbm"
MODEL_FILE = "model.txt"
IMPORTANCE_FILE = "importance.csv"
PREDICTION_COLUMNS = ("idx", "msno", "song_id", "eval_split", "split_mode", "target")
PREDICTION_SCHEMA = (
    "idx long, msno string, song_id string, eval_split string, split_mode string, target int, score double"
)
_RESULT_SCHEMA = "kind string, rank int, seq int, text string"
_CHUNK_CHARS = 8 << 20
_FAILURE = "lightgbm task failed"

TaskHook = Callable[[int], None]


# ---- inputs ---------------------------------------------------------------------------------
def features_path(cfg: Config) -> str:
    return lake.table_path(cfg.lake.root, "silver", "features")


def manifest_path(cfg: Config) -> str:
    return lake.table_path(cfg.lake.root, "silver", "feature_manifest")


def model_columns(
    spark: SparkSession, cfg: Config, profile: str, table: DataFrame
) -> tuple[list[str], set[str]]:
    """The ``in_gbdt`` columns of ``profile`` (in the table's column order) and the categorical ones.

    ``table`` is silver.features of that profile; every manifest column must be in it.
    """
    path = manifest_path(cfg)
    if not lake.exists(path):
        raise InputError(f"no feature manifest at {path} (run `relisten features` first)")
    manifest = lake.read(spark, path, where={"profile": profile})
    rows = manifest.where(F.col("in_gbdt")).select("name", "categorical").collect()  # one row per column
    if not rows:
        raise InputError(f"feature manifest {path} lists no in_gbdt column for profile '{profile}'")
    names = {r["name"] for r in rows}
    missing = sorted(names - set(table.columns))
    if missing:
        raise InputError(
            f"silver.features (profile '{profile}') has no column '{missing[0]}' listed in the manifest"
        )
    return [c for c in table.columns if c in names], {r["name"] for r in rows if r["categorical"]}


def task_threads(spark: SparkSession) -> int:
    """LightGBM threads per task: ``spark.task.cpus`` (1 when unset)."""
    return int(spark.sparkContext.getConf().get("spark.task.cpus", "1"))


def lightgbm_params(settings: TrainSettings, num_threads: int) -> dict[str, Any]:
    """The parameters every backend and the single-process reference train with."""
    return {**settings.params, "num_threads": num_threads}


# ---- barrier training -----------------------------------------------------------------------
@dataclass
class TrainOutput:
    """A trained model string and what the ranks reported about it."""

    model: str
    ranks: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def best_iteration(self) -> int:
        return int(self.ranks[0]["best_iteration"]) if self.ranks else 0

    @property
    def num_trees(self) -> int:
        return int(self.ranks[0]["num_trees"]) if self.ranks else 0


def _check_slots(spark: SparkSession, num_tasks: int) -> None:
    """A local barrier stage needs ``num_tasks`` free task slots at once; say so instead of hanging."""
    sc = spark.sparkContext
    if not sc.master.startswith("local"):
        return  # on a cluster Spark waits for slots and fails the stage itself if they never come
    jsc = sc._jsc.sc()  # type: ignore[attr-defined]
    slots = int(jsc.maxNumConcurrentTasks(jsc.resourceProfileManager().defaultResourceProfile()))
    if slots < num_tasks:
        raise ConfigError(
            f"gbdt.num_tasks={num_tasks} exceeds the {slots} task slots of master {sc.master}: "
            "a barrier stage runs all its tasks at once"
        )


def _route_keys(spark: SparkSession, num_tasks: int) -> list[int]:
    """Ints ``k_0..k_{n-1}`` such that ``repartition(n, col)`` sends ``k_i`` to partition ``i``.

    Spark's hash partitioning is ``pmod(hash(col), n)`` (Murmur3, seed 42, the same as
    ``F.hash``); the tasks check that each row reached the partition it was meant for.
    """
    rows = (
        spark.range(0, 64 * num_tasks)
        .select(F.col("id").cast("int").alias("k"))
        .groupBy(F.expr(f"pmod(hash(k), {num_tasks})").alias("p"))
        .agg(F.min("k").alias("k"))
        .collect()  # at most num_tasks rows
    )
    keys = {int(r["p"]): int(r["k"]) for r in rows}
    if len(keys) < num_tasks:
        raise TrainingError(f"could not find routing keys for {num_tasks} partitions")
    return [keys[i] for i in range(num_tasks)]


def _partitioned(
    spark: SparkSession, fit: DataFrame, valid: DataFrame | None, features: list[str], num_tasks: int
) -> DataFrame:
    """``[_part, _valid, idx, target, *features]`` in exactly ``num_tasks`` partitions.

    Fit rows go to partition ``idx mod num_tasks``; each calib row is copied to every partition.
    """
    cols = [F.col("idx").cast("long"), F.col("target").cast("int")] + [
        F.col(f).cast("double").alias(f) for f in features
    ]
    parts = F.pmod(F.col("idx"), F.lit(num_tasks)).cast("int")
    data = fit.select(parts.alias("_part"), F.lit(False).alias("_valid"), *cols)
    if valid is not None:
        every = spark.range(num_tasks).select(F.col("id").cast("int").alias("_part"))
        data = data.unionByName(valid.select(F.lit(True).alias("_valid"), *cols).crossJoin(every))
    keys = F.array(*[F.lit(k) for k in _route_keys(spark, num_tasks)])
    return data.withColumn("_route", F.element_at(keys, F.col("_part") + 1)).repartition(num_tasks, "_route")


def _free_port() -> int:
    """A port that was free a moment ago (bound to 0, read, closed right before LightGBM binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def _task_host(ctx: Any, partition: int) -> str:
    """This task's executor address as an IP (LightGBM matches machines by IP)."""
    address = ctx.getTaskInfos()[partition].address
    return socket.gethostbyname(address.rsplit(":", 1)[0])


@dataclass
class _Blocks:
    """A task's rows as NumPy blocks: fit rows as a list (no copy into one matrix), calib rows sorted."""

    fit_x: list[np.ndarray] = field(default_factory=list)
    fit_y: list[np.ndarray] = field(default_factory=list)
    val_x: list[np.ndarray] = field(default_factory=list)
    val_y: list[np.ndarray] = field(default_factory=list)
    val_idx: list[np.ndarray] = field(default_factory=list)

    @property
    def fit_rows(self) -> int:
        return int(sum(len(y) for y in self.fit_y))

    def validation(self) -> tuple[np.ndarray, np.ndarray] | None:
        if not self.val_y:
            return None
        order = np.argsort(np.concatenate(self.val_idx), kind="stable")
        return np.vstack(self.val_x)[order], np.concatenate(self.val_y)[order]


# Feature blocks are held as float32 until lightgbm bins them: at full scale (7M rows x 388
# columns) float64 blocks need 22 GB, float32 half of that. Binning sees the same order.
TRAIN_DTYPE = np.float32


def _labels(batch: pa.RecordBatch, partition: int) -> np.ndarray:
    target = batch.column("target")
    if target.null_count:
        raise ValueError(f"partition {partition}: {target.null_count} training rows have a null target")
    y = target.to_numpy(zero_copy_only=False)
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        raise ValueError(f"partition {partition}: target must be 0 or 1, found {y[bad][0]}")
    return y.astype(np.float64)


def _read_blocks(batches: Iterator[pa.RecordBatch], features: list[str], partition: int) -> _Blocks:
    blocks = _Blocks()
    for batch in batches:
        if batch.num_rows == 0:
            continue
        parts = batch.column("_part").to_numpy(zero_copy_only=False)
        if (parts != partition).any():
            raise RuntimeError(
                f"rows of partition {int(parts[parts != partition][0])} reached task {partition}"
            )
        is_valid = batch.column("_valid").to_numpy(zero_copy_only=False)
        x = np.column_stack([batch.column(f).to_numpy(zero_copy_only=False) for f in features]).astype(
            TRAIN_DTYPE, copy=False
        )
        y = _labels(batch, partition)
        if not is_valid.any():  # the usual batch: fit rows only, kept without a copy
            blocks.fit_x.append(x)
            blocks.fit_y.append(y)
            continue
        fit = ~is_valid
        if fit.any():
            blocks.fit_x.append(x[fit])
            blocks.fit_y.append(y[fit])
        blocks.val_x.append(x[is_valid])
        blocks.val_y.append(y[is_valid])
        blocks.val_idx.append(batch.column("idx").to_numpy(zero_copy_only=False)[is_valid])
    return blocks


def _result(kind: str, rank: int, seq: int, text: str) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [pa.array([kind]), pa.array([rank], pa.int32()), pa.array([seq], pa.int32()), pa.array([text])],
        names=["kind", "rank", "seq", "text"],
    )


@dataclass(frozen=True)
class _TaskSpec:
    features: list[str]
    categorical: list[str]
    params: dict[str, Any]
    num_boost_round: int
    early_stopping_rounds: int
    tree_learner: str
    timeout_minutes: int
    hook: TaskHook | None


def _train_task(ctx: Any, batches: Iterator[pa.RecordBatch], spec: _TaskSpec) -> Iterator[pa.RecordBatch]:
    partition = ctx.partitionId()
    blocks = _read_blocks(batches, spec.features, partition)
    rows = blocks.fit_rows
    port = _free_port()
    message = json.dumps(
        {"partition": partition, "host": _task_host(ctx, partition), "port": port, "rows": rows}
    )
    peers = sorted((json.loads(m) for m in ctx.allGather(message)), key=lambda p: p["partition"])
    members = [p for p in peers if p["rows"] > 0]
    if not members:
        raise ValueError("no task received training rows")
    if rows == 0:
        return
    rank = next(i for i, p in enumerate(members) if p["partition"] == partition)
    params = dict(spec.params)
    if len(members) > 1:
        params.update(
            tree_learner=spec.tree_learner,
            num_machines=len(members),
            machines=",".join(f"{p['host']}:{p['port']}" for p in members),
            local_listen_port=port,
            time_out=spec.timeout_minutes,
            pre_partition=True,
        )
    else:
        params["tree_learner"] = "serial"
    train_set = lgb.Dataset(
        blocks.fit_x,
        np.concatenate(blocks.fit_y),
        feature_name=spec.features,
        categorical_feature=spec.categorical or "auto",
        free_raw_data=True,
    )
    blocks.fit_x = []  # the Dataset holds the blocks until it is built inside lightgbm.train
    validation = blocks.validation()
    valid_sets, callbacks = [], []
    if validation is not None and spec.early_stopping_rounds > 0:
        valid_sets = [train_set.create_valid(validation[0], validation[1])]
        callbacks = [lgb.early_stopping(spec.early_stopping_rounds, first_metric_only=True, verbose=False)]
    if spec.hook is not None:
        spec.hook(partition)
    started = time.perf_counter()
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=spec.num_boost_round,
        valid_sets=valid_sets,
        valid_names=["calib"] * len(valid_sets),
        callbacks=callbacks,
    )
    info = {
        "partition": partition,
        "rank": rank,
        "machines": len(members),
        "rows": rows,
        "valid_rows": 0 if validation is None else len(validation[1]),
        "best_iteration": int(booster.best_iteration),
        "num_trees": int(booster.num_trees()),
        "best_score": {name: dict(scores) for name, scores in booster.best_score.items()},
        "seconds": time.perf_counter() - started,
    }
    yield _result("info", rank, 0, json.dumps(info))
    if rank == 0:
        model = booster.model_to_string()
        for seq, start in enumerate(range(0, len(model), _CHUNK_CHARS)):
            yield _result("model", 0, seq, model[start : start + _CHUNK_CHARS])


def _task_fn(spec: _TaskSpec) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import BarrierTaskContext

        ctx = BarrierTaskContext.get()
        try:
            yield from _train_task(ctx, batches, spec)
        except Exception as exc:
            raise RuntimeError(
                f"{_FAILURE} on partition {ctx.partitionId()}: {type(exc).__name__}: {exc}"
            ) from exc

    return task


def worker_error(exc: BaseException) -> str:
    """The most telling line of a failed Spark job.

    In order: our task's message, a crashed Python worker, the last Python exception line of
    the worker's traceback, Spark's failure reason, the first line.
    """
    text = str(exc)
    for pattern in (rf"{_FAILURE}[^\n]*", r"Python worker exited unexpectedly[^\n.]*"):
        found = re.search(pattern, text)
        if found:
            return found.group(0).strip()
    python_errors = re.findall(r"^[A-Za-z_]\w*(?:Error|Exception): .+$", text, flags=re.MULTILINE)
    if python_errors:
        return python_errors[-1].strip()
    reason = re.search(r"most recent failure(?: reason)?:[^\n]*", text, flags=re.IGNORECASE)
    if reason:
        return reason.group(0).strip()
    return text.strip().splitlines()[0][:500] if text.strip() else type(exc).__name__


def train_barrier(
    spark: SparkSession,
    fit: DataFrame,
    valid: DataFrame | None,
    features: list[str],
    categorical: list[str],
    settings: TrainSettings,
    num_tasks: int,
    tree_learner: str = "data",
    network_timeout_s: int = 120,
    task_hook: TaskHook | None = None,
) -> TrainOutput:
    """Train LightGBM data-parallel in one barrier stage of ``num_tasks`` tasks (module docstring).

    ``fit`` and ``valid`` (calib rows, for early stopping; None to train without): ``[idx long,
    target int (0/1), *features numeric]``. ``task_hook(partition)`` runs in every task that
    has rows right before ``lightgbm.train`` (fault injection in tests).
    """
    _check_slots(spark, num_tasks)
    spec = _TaskSpec(
        features=list(features),
        categorical=list(categorical),
        params=lightgbm_params(settings, task_threads(spark)),
        num_boost_round=settings.num_boost_round,
        early_stopping_rounds=settings.early_stopping_rounds,
        tree_learner=tree_learner,
        timeout_minutes=max(1, math.ceil(network_timeout_s / 60)),
        hook=task_hook,
    )
    use_valid = valid if settings.early_stopping_rounds > 0 else None
    data = _partitioned(spark, fit, use_valid, spec.features, num_tasks)
    started = time.perf_counter()
    try:
        rows = data.mapInArrow(
            _task_fn(spec), _RESULT_SCHEMA, barrier=True
        ).collect()  # one model + one line/task
    except Exception as exc:
        raise TrainingError(f"distributed LightGBM training failed: {worker_error(exc)}") from exc
    seconds = time.perf_counter() - started
    ranks = sorted((json.loads(r["text"]) for r in rows if r["kind"] == "info"), key=lambda i: i["rank"])
    chunks = sorted((r for r in rows if r["kind"] == "model"), key=lambda r: r["seq"])
    if not chunks:
        raise TrainingError("distributed LightGBM training returned no model")
    agreed = {(i["num_trees"], i["best_iteration"]) for i in ranks}
    if len(agreed) > 1:
        raise TrainingError(f"LightGBM ranks disagree on trees/best iteration: {sorted(agreed)}")
    log.info(
        "lightgbm: %d machine(s), %d trees, %.1f s (%s)",
        len(ranks),
        ranks[0]["num_trees"],
        seconds,
        ", ".join(f"rank {i['rank']}: {i['rows']} rows" for i in ranks),
    )
    return TrainOutput(model="".join(r["text"] for r in chunks), ranks=ranks, seconds=seconds)


def train(
    spark: SparkSession,
    cfg: Config,
    fit: DataFrame,
    valid: DataFrame | None,
    features: list[str],
    categorical: list[str],
    settings: TrainSettings,
) -> TrainOutput:
    """Train with the backend of ``gbdt.backend``; both return LightGBM's native model string."""
    gb = cfg.gbdt
    if gb.backend == "synapseml":
        from relisten_spark.models import synapse

        started = time.perf_counter()
        model = synapse.train(
            spark,
            fit,
            valid,
            features,
            categorical,
            settings,
            num_tasks=gb.num_tasks,
            tree_learner=gb.tree_learner,
            num_threads=task_threads(spark),
            timeout_s=gb.network_timeout_s,
        )
        booster = lgb.Booster(model_str=model)
        info = {"rank": 0, "num_trees": booster.num_trees(), "best_iteration": booster.best_iteration}
        return TrainOutput(model=model, ranks=[info], seconds=time.perf_counter() - started)
    return train_barrier(
        spark,
        fit,
        valid,
        features,
        categorical,
        settings,
        gb.num_tasks,
        gb.tree_learner,
        gb.network_timeout_s,
    )


# ---- prediction -----------------------------------------------------------------------------
_BOOSTERS: dict[str, lgb.Booster] = {}


def _booster(key: str, model: Any) -> lgb.Booster:
    """The model of ``key``, loaded once per Python worker."""
    if key not in _BOOSTERS:
        _BOOSTERS.clear()
        _BOOSTERS[key] = lgb.Booster(model_str=model.value)
    return _BOOSTERS[key]


def predict(spark: SparkSession, rows: DataFrame, model: str, features: list[str]) -> DataFrame:
    """Score ``rows`` with a LightGBM model string, in vectorised Arrow batches.

    ``rows``: ``[idx, msno, song_id, eval_split, split_mode, target, *features]``. Returns
    :data:`PREDICTION_SCHEMA` (``score`` = predicted probability).
    """
    key = hashlib.sha1(model.encode()).hexdigest()
    shared = spark.sparkContext.broadcast(model)
    keys = list(PREDICTION_COLUMNS)
    threads = task_threads(spark)

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        booster = _booster(key, shared)
        for batch in batches:
            x = np.column_stack([batch.column(f).to_numpy(zero_copy_only=False) for f in features])
            p = booster.predict(x.astype(np.float64, copy=False), num_threads=threads) if len(x) else []
            columns = [batch.column(k) for k in keys] + [pa.array(p, pa.float64())]
            yield pa.RecordBatch.from_arrays(columns, names=[*keys, "score"])

    selected = rows.select(
        F.col("idx").cast("long"),
        F.col("msno").cast("string"),
        F.col("song_id").cast("string"),
        F.col("eval_split").cast("string"),
        F.col("split_mode").cast("string"),
        F.col("target").cast("int"),
        *[F.col(f).cast("double").alias(f) for f in features],
    )
    return selected.mapInArrow(score, PREDICTION_SCHEMA)


def feature_importance(model: str) -> list[dict[str, Any]]:
    """``[{feature, gain, split}]`` of a model string, by gain descending."""
    booster = lgb.Booster(model_str=model)
    gains = booster.feature_importance("gain")
    splits = booster.feature_importance("split")
    table = [
        {"feature": f, "gain": float(g), "split": int(s)}
        for f, g, s in zip(booster.feature_name(), gains, splits, strict=True)
    ]
    return sorted(table, key=lambda r: (-r["gain"], r["feature"]))


def _importance_csv(table: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["feature", "gain", "split"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    return out.getvalue()


def split_metrics(preds: DataFrame) -> dict[str, dict[str, float | None]]:
    """``{eval_split: {metric: value}}`` for the labelled holdout rows of a predictions frame."""
    rows = binary_metrics(preds.where(F.col("eval_split").isin("calib", "eval")), ["eval_split"]).collect()
    out: dict[str, dict[str, float | None]] = {}
    for r in rows:  # 7 metrics x 2 splits
        out.setdefault(r["eval_split"], {})[r["metric"]] = r["value"]
    return out


# ---- the stage ------------------------------------------------------------------------------
def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    """``relisten train-gbdt``: train, register, predict the holdout; returns a summary."""
    gb = cfg.gbdt
    profile = gb.profile
    path = features_path(cfg)
    if not lake.exists(path):
        raise InputError(f"no features table at {path} (run `relisten features` first)")
    features_version = lake.version(path)
    table = lake.read(spark, path, where={"profile": profile})
    columns, manifest_categorical = model_columns(spark, cfg, profile, table)
    settings = presets.resolve(gb)
    categorical = presets.categorical_columns(settings.categorical, columns, manifest_categorical)
    split = assign_eval_split(table, cfg.evaluation)
    counts = {r["eval_split"]: int(r["count"]) for r in split.groupBy("eval_split").count().collect()}
    if counts.get("fit", 0) == 0:
        raise InputError(f"silver.features (profile '{profile}') at {path} has no training rows")
    if settings.early_stopping_rounds > 0 and counts.get("calib", 0) == 0:
        raise InputError("gbdt.early_stopping_rounds needs calib rows, but the holdout is empty")
    fit = split.where(F.col("eval_split") == "fit")
    valid = split.where(F.col("eval_split") == "calib") if settings.early_stopping_rounds > 0 else None

    output = train(spark, cfg, fit, valid, columns, categorical, settings)
    importance = feature_importance(output.model)
    holdout = split.where(F.col("eval_split").isin("calib", "eval", "test"))
    preds = predict(spark, holdout, output.model, columns).persist()
    try:
        metrics = split_metrics(preds)
        metadata = {
            "model": MODEL_NAME,
            "backend": gb.backend,
            "preset": gb.preset,
            "profile": profile,
            "parameters": {
                **lightgbm_params(settings, task_threads(spark)),
                "num_boost_round": settings.num_boost_round,
                "early_stopping_rounds": settings.early_stopping_rounds,
                "tree_learner": gb.tree_learner,
                "num_tasks": gb.num_tasks,
            },
            "features": columns,
            "categorical_features": categorical,
            "categorical_mode": settings.categorical,
            "training_data": {"table": path, "version": features_version, "profile": profile},
            "evaluation": {
                "split_mode": cfg.evaluation.split,
                "holdout_fraction": cfg.evaluation.holdout_fraction,
            },
            "row_counts": {k: counts.get(k, 0) for k in ("fit", "calib", "eval", "test")},
            "training_seconds": output.seconds,
            "best_iteration": output.best_iteration,
            "num_trees": output.num_trees,
            "ranks": output.ranks,
            "metrics": metrics,
            "feature_importance_gain": {r["feature"]: r["gain"] for r in importance},
            "model_file": MODEL_FILE,
            "importance_file": IMPORTANCE_FILE,
        }

        def write_files(folder: Path) -> None:
            (folder / MODEL_FILE).write_text(output.model)
            (folder / IMPORTANCE_FILE).write_text(_importance_csv(importance))

        version = registry.save_model(cfg.models.root, MODEL_NAME, write_files, metadata)
        run_id = new_run_id("train-gbdt")
        write_predictions(spark, cfg, preds, MODEL_NAME, version, profile, run_id)
    finally:
        preds.unpersist()
    baseline_version = popularity.run_baseline(spark, cfg, split, profile, run_id, features_version)
    log.info("lightgbm %s (%s profile) eval: %s", version, profile, metrics.get("eval"))
    return {
        "run_id": run_id,
        "profile": profile,
        "backend": gb.backend,
        "preset": gb.preset,
        "model_versions": {MODEL_NAME: version, popularity.MODEL_NAME: baseline_version},
        "input_versions": {"silver.features": features_version},
        "rows": {k: counts.get(k, 0) for k in ("fit", "calib", "eval", "test")},
        "features": len(columns),
        "trees": output.num_trees,
        "train_s": round(output.seconds, 2),
        "eval": {k: f"{v:.4f}" for k, v in metrics.get("eval", {}).items() if v is not None},
    }
