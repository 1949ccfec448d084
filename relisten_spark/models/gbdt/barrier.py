"""Data-parallel LightGBM in one Spark barrier stage (the default backend), the way SynapseML and
``xgboost.spark`` do it:

1. the fit rows are shuffled into exactly ``gbdt.num_tasks`` partitions (row ``idx`` modulo
   the number of tasks); when early stopping is on, every partition also gets a copy of all
   ``calib`` rows (see "Early stopping");
2. one barrier stage (``mapInArrow(..., barrier=True)``) runs a task per partition
   (:mod:`relisten_spark.models.gbdt.task`). Each task binds a free port and turns its Arrow
   batches into NumPy blocks; from its first fit row on it shares ``host:port`` and whether it
   has rows through ``BarrierTaskContext.allGather``, in a background thread that overlaps the
   rest of the read. Tasks without rows stay out of LightGBM's ``machines``
   list and return nothing (an empty member would break the network); the others call
   ``lightgbm.train`` with ``tree_learner`` data or voting, ``num_machines``, ``machines``,
   ``local_listen_port``, ``time_out`` (from ``gbdt.network_timeout_s``),
   ``pre_partition=True`` and ``num_threads`` = ``spark.task.cpus``. The ``Dataset`` is built
   inside ``lightgbm.train`` after the network is up, so bin boundaries are agreed across tasks;
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

import json
import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from relisten_spark.errors import ConfigError, TrainingError
from relisten_spark.models.gbdt.inputs import TrainRows, lightgbm_params, task_threads
from relisten_spark.models.gbdt.task import FAILURE, RESULT_SCHEMA, TaskHook, TaskSpec, task_fn
from relisten_spark.models.presets import TrainSettings
from relisten_spark.runtime import PhaseTimer

log = logging.getLogger(__name__)


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
    if not str(sc.master).startswith("local"):
        return  # on a cluster Spark waits for slots and fails the stage itself if they never come
    jsc = sc._jsc.sc()
    slots = int(jsc.maxNumConcurrentTasks(jsc.resourceProfileManager().defaultResourceProfile()))
    if slots < num_tasks:
        raise ConfigError(
            f"gbdt.num_tasks={num_tasks} exceeds the {slots} task slots of master {sc.master}: "
            "a barrier stage runs all its tasks at once"
        )


_MASK = 0xFFFFFFFF


def _rotl32(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _MASK


def spark_hash_int(value: int) -> int:
    """Spark's ``hash(value)`` of an ``int`` column (Murmur3 x86 32-bit, seed 42), as a signed int.

    >>> spark_hash_int(0), spark_hash_int(1), spark_hash_int(-7)
    (933211791, -559580957, -1618159745)
    """
    k = (value & _MASK) * 0xCC9E2D51 & _MASK
    k = _rotl32(k, 15) * 0x1B873593 & _MASK
    h = _rotl32(42 ^ k, 13)
    h = (h * 5 + 0xE6546B64) & _MASK
    h ^= 4  # the input's length in bytes
    h = (h ^ (h >> 16)) * 0x85EBCA6B & _MASK
    h = (h ^ (h >> 13)) * 0xC2B2AE35 & _MASK
    h ^= h >> 16
    return h - (1 << 32) if h >= 1 << 31 else h


def _route_keys(num_tasks: int) -> list[int]:
    """Ints ``k_0..k_{n-1}`` such that ``repartition(n, col)`` sends ``k_i`` to partition ``i``.

    Spark's hash partitioning is ``pmod(hash(col), n)`` (:func:`spark_hash_int`), computed here
    without a Spark job; the tasks check that each row reached the partition it was meant for.
    """
    keys: dict[int, int] = {}
    k = 0
    while len(keys) < num_tasks:
        keys.setdefault(spark_hash_int(k) % num_tasks, k)
        k += 1
    return [keys[i] for i in range(num_tasks)]


def _partitioned(
    spark: SparkSession, fit: DataFrame, valid: DataFrame | None, features: list[str], num_tasks: int
) -> DataFrame:
    """``[_part, _valid, idx, target, *features float]`` in exactly ``num_tasks`` partitions.

    Fit rows go to partition ``idx mod num_tasks``; each calib row is copied to every partition.
    The features are cast to float (32 bits) before the shuffle: the tasks train on float32
    anyway (:data:`~relisten_spark.models.gbdt.task.TRAIN_DTYPE`, the same rounding), and
    half the bytes cross the shuffle and the Arrow stream.
    """
    cols = [F.col("idx").cast("long"), F.col("target").cast("int")] + [
        F.col(f).cast("float").alias(f) for f in features
    ]
    parts = F.pmod(F.col("idx"), F.lit(num_tasks)).cast("int")
    data = fit.select(parts.alias("_part"), F.lit(False).alias("_valid"), *cols)
    if valid is not None:
        every = spark.range(num_tasks).select(F.col("id").cast("int").alias("_part"))
        data = data.unionByName(valid.select(F.lit(True).alias("_valid"), *cols).crossJoin(every))
    keys = F.array(*[F.lit(k) for k in _route_keys(num_tasks)])
    return data.withColumn("_route", F.element_at(keys, F.col("_part") + 1)).repartition(num_tasks, "_route")


def worker_error(exc: BaseException) -> str:
    """The most telling line of a failed Spark job.

    In order: our task's message, a crashed Python worker, the last Python exception line of
    the worker's traceback, Spark's failure reason, the first line.
    """
    text = str(exc)
    for pattern in (rf"{FAILURE}[^\n]*", r"Python worker exited unexpectedly[^\n.]*"):
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


def _output(rows: list[Any], seconds: float) -> TrainOutput:
    """The model and the agreed rank reports from the barrier stage's records."""
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


def train_barrier(
    spark: SparkSession,
    rows: TrainRows,
    settings: TrainSettings,
    num_tasks: int,
    tree_learner: str = "data",
    network_timeout_s: int = 120,
    task_hook: TaskHook | None = None,
) -> TrainOutput:
    """Train LightGBM data-parallel in one barrier stage of ``num_tasks`` tasks (module docstring).

    ``rows``: :class:`~relisten_spark.models.gbdt.inputs.TrainRows` (``valid`` is used only
    when early stopping is on). ``task_hook(partition)`` runs in every task that has rows
    right before ``lightgbm.train`` (fault injection in tests).
    """
    _check_slots(spark, num_tasks)
    spec = TaskSpec(
        features=list(rows.features),
        categorical=list(rows.categorical),
        params=lightgbm_params(settings, task_threads(spark)),
        num_boost_round=settings.num_boost_round,
        early_stopping_rounds=settings.early_stopping_rounds,
        tree_learner=tree_learner,
        timeout_minutes=max(1, math.ceil(network_timeout_s / 60)),
        hook=task_hook,
    )
    use_valid = rows.valid if settings.early_stopping_rounds > 0 else None
    data = _partitioned(spark, rows.fit, use_valid, spec.features, num_tasks)
    timer = PhaseTimer("lightgbm")
    try:
        with timer.phase("barrier stage"):
            records = data.mapInArrow(
                task_fn(spec), RESULT_SCHEMA, barrier=True
            ).collect()  # model + 1 line/task
    except Exception as exc:
        raise TrainingError(f"distributed LightGBM training failed: {worker_error(exc)}") from exc
    return _output(records, timer.seconds["barrier stage"])
