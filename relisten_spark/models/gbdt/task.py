"""The task side of barrier training: one LightGBM machine per Spark barrier task.

A task binds a free port, then reads all its Arrow batches into float32 NumPy blocks
(:func:`read_blocks`: one preallocated block per batch, filled column by column from the Arrow
buffers, no pandas and no concatenation). As soon as it sees its first fit row (or its input
ends without one) it shares ``host:port`` and whether it has rows through
``BarrierTaskContext.allGather`` in a background thread: Spark's barrier calls poll for their
answer once a second, and that wait now overlaps the rest of the read. Then it joins LightGBM's
network (tasks without rows stay out of it and return nothing) and trains on the list of
blocks: the network starts only once the data is ready, so no rank waits in it while another is
still reading. LightGBM is imported with ``OMP_WAIT_POLICY=PASSIVE`` unless the environment says
otherwise, and inside tasks without its scikit-learn API (:func:`lightgbm_module`).
It returns one ``info`` record (a JSON line: rows, trees, best iteration, scores, seconds
reading, waiting for the peers, in ``lightgbm.train`` and until its first round ended) and, on
rank 0, the model string in ``model`` records of 8 MB (:data:`RESULT_SCHEMA`). The driver side
is :mod:`relisten_spark.models.gbdt.barrier`.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    import lightgbm as lgb

RESULT_SCHEMA = "kind string, rank int, seq int, text string"
FAILURE = "lightgbm task failed"
_CHUNK_CHARS = 8 << 20

# Feature blocks are held as float32 until lightgbm bins them: at full scale (7M rows x 388
# columns) float64 blocks need 22 GB, float32 half of that. Binning sees the same order.
TRAIN_DTYPE = np.float32

TaskHook = Callable[[int], None]


def lightgbm_module() -> ModuleType:
    """``lightgbm``, imported with ``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets it.

    OpenMP reads the policy once, when LightGBM's library loads: with it, an idle OpenMP thread
    sleeps instead of spinning, which made a 2-thread ``lightgbm.train`` ~15x faster on a busy
    machine (a process that loaded LightGBM before keeps the policy it loaded with).

    Inside a Spark task LightGBM is imported without its optional scikit-learn API, which no
    task uses: importing scikit-learn (with SciPy's statistics and pandas) took 0.65 s of the
    0.97 s that ``import lightgbm`` cost every fresh Python worker. ``import sklearn`` itself
    still works afterwards.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from pyspark import TaskContext

    hide = "lightgbm" not in sys.modules and "sklearn" not in sys.modules and TaskContext.get() is not None
    if hide:
        sys.modules["sklearn"] = None  # type: ignore[assignment]  # `import sklearn` raises ImportError
    try:
        import lightgbm
    finally:
        if hide:
            del sys.modules["sklearn"]
    return lightgbm


@dataclass(frozen=True)
class TaskSpec:
    """What every task trains with (pickled into the barrier stage's closure)."""

    features: list[str]
    categorical: list[str]
    params: dict[str, Any]
    num_boost_round: int
    early_stopping_rounds: int
    tree_learner: str
    timeout_minutes: int
    hook: TaskHook | None  # runs right before lightgbm.train (fault injection in tests)


@dataclass
class Blocks:
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
        """Calib features and labels in ``idx`` order (the same on every task), or None."""
        if not self.val_y:
            return None
        order = np.argsort(np.concatenate(self.val_idx), kind="stable")
        return np.vstack(self.val_x)[order], np.concatenate(self.val_y)[order]


def _labels(batch: pa.RecordBatch, partition: int) -> np.ndarray:
    target = batch.column("target")
    if target.null_count:
        raise ValueError(f"partition {partition}: {target.null_count} training rows have a null target")
    y = target.to_numpy(zero_copy_only=False)
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        raise ValueError(f"partition {partition}: target must be 0 or 1, found {y[bad][0]}")
    return y.astype(np.float64)


def feature_block(batch: pa.RecordBatch, features: list[str]) -> np.ndarray:
    """``[rows, features]`` :data:`TRAIN_DTYPE` of a batch: one preallocated array filled column
    by column straight from the Arrow buffers (nulls become NaN, LightGBM's missing value)."""
    x = np.empty((batch.num_rows, len(features)), dtype=TRAIN_DTYPE)
    for j, name in enumerate(features):
        x[:, j] = batch.column(name).to_numpy(zero_copy_only=False)
    return x


def read_blocks(
    batches: Iterable[pa.RecordBatch],
    features: list[str],
    partition: int,
    on_first_fit_row: Callable[[], None] | None = None,
) -> Blocks:
    """Batches ``[_part, _valid, idx, target, *features]`` of ``partition`` as :class:`Blocks`;
    ``on_first_fit_row()`` runs once, when the first batch holding a fit row arrives."""
    blocks = Blocks()
    for batch in batches:
        if batch.num_rows == 0:
            continue
        parts = batch.column("_part").to_numpy(zero_copy_only=False)
        if (parts != partition).any():
            raise RuntimeError(
                f"rows of partition {int(parts[parts != partition][0])} reached task {partition}"
            )
        is_valid = batch.column("_valid").to_numpy(zero_copy_only=False)
        x = feature_block(batch, features)
        y = _labels(batch, partition)
        if on_first_fit_row is not None and not blocks.fit_y and not is_valid.all():
            on_first_fit_row()
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


def _bound_socket() -> socket.socket:
    """A socket bound to a free port: it holds the port until it is closed, right before
    LightGBM binds the same port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("", 0))
    return sock


class _Gather:
    """``ctx.allGather(message)`` in a daemon thread: the caller goes on while the peers arrive."""

    def __init__(self, ctx: Any, message: str) -> None:
        self._answer: list[str] = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(ctx, message), daemon=True)
        self._thread.start()

    def _run(self, ctx: Any, message: str) -> None:
        try:
            self._answer = list(ctx.allGather(message))
        except BaseException as exc:  # handed to the task's thread by result()
            self._error = exc

    def result(self) -> list[str]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._answer


def _task_host(ctx: Any, partition: int) -> str:
    """This task's executor address as an IP (LightGBM matches machines by IP)."""
    address = ctx.getTaskInfos()[partition].address
    return socket.gethostbyname(address.rsplit(":", 1)[0])


def _record(kind: str, rank: int, seq: int, text: str) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [pa.array([kind]), pa.array([rank], pa.int32()), pa.array([seq], pa.int32()), pa.array([text])],
        names=["kind", "rank", "seq", "text"],
    )


def _network_params(spec: TaskSpec, members: list[dict[str, Any]], port: int) -> dict[str, Any]:
    """LightGBM's parameters for this network: data/voting parallel over ``members``, serial alone."""
    params = dict(spec.params)
    if len(members) == 1:
        params["tree_learner"] = "serial"
        return params
    params.update(
        tree_learner=spec.tree_learner,
        num_machines=len(members),
        machines=",".join(f"{p['host']}:{p['port']}" for p in members),
        local_listen_port=port,
        time_out=spec.timeout_minutes,
        pre_partition=True,
    )
    return params


def _fit(
    spec: TaskSpec, params: dict[str, Any], blocks: Blocks, partition: int
) -> tuple[lgb.Booster, float, float]:
    """``lightgbm.train`` on the fit blocks, early stopping on the calib rows when asked; the
    booster, the seconds ``lightgbm.train`` took and the seconds until its first round ended
    (joining the network and binning the rows happen before that round)."""
    lightgbm = lightgbm_module()
    train_set = lightgbm.Dataset(
        blocks.fit_x,
        np.concatenate(blocks.fit_y),
        feature_name=spec.features,
        categorical_feature=spec.categorical or "auto",
        free_raw_data=True,
    )
    blocks.fit_x = []  # the Dataset holds the blocks until it is built inside lightgbm.train
    validation = blocks.validation()
    valid_sets: list[lgb.Dataset] = []
    rounds_ended: list[float] = []
    callbacks: list[Callable[..., Any]] = [lambda env: rounds_ended.append(time.perf_counter())]
    if validation is not None and spec.early_stopping_rounds > 0:
        valid_sets = [train_set.create_valid(validation[0], validation[1])]
        stop = lightgbm.early_stopping(spec.early_stopping_rounds, first_metric_only=True, verbose=False)
        callbacks.append(stop)
    if spec.hook is not None:
        spec.hook(partition)
    started = time.perf_counter()
    booster = lightgbm.train(
        params,
        train_set,
        num_boost_round=spec.num_boost_round,
        valid_sets=valid_sets,
        valid_names=["calib"] * len(valid_sets),
        callbacks=callbacks,
    )
    first_round = rounds_ended[0] - started if rounds_ended else float("nan")
    return booster, time.perf_counter() - started, first_round


def train_task(ctx: Any, batches: Iterable[pa.RecordBatch], spec: TaskSpec) -> Iterator[pa.RecordBatch]:
    """One barrier task: read, join the network, train, report (module docstring)."""
    partition = ctx.partitionId()
    sock = _bound_socket()
    port = int(sock.getsockname()[1])
    host = _task_host(ctx, partition)
    gathers: list[_Gather] = []

    def announce(has_rows: bool) -> None:
        message = {"partition": partition, "host": host, "port": port, "has_rows": has_rows}
        gathers.append(_Gather(ctx, json.dumps(message)))

    try:
        started = time.perf_counter()
        blocks = read_blocks(batches, spec.features, partition, on_first_fit_row=lambda: announce(True))
        read_seconds = time.perf_counter() - started
        if not gathers:
            announce(False)
        started = time.perf_counter()
        peers = sorted((json.loads(m) for m in gathers[0].result()), key=lambda p: p["partition"])
        wait_seconds = time.perf_counter() - started
    finally:
        sock.close()
    rows = blocks.fit_rows
    valid_rows = sum(len(y) for y in blocks.val_y)
    members = [p for p in peers if p["has_rows"]]
    if not members:
        raise ValueError("no task received training rows")
    if rows == 0:
        return
    rank = next(i for i, p in enumerate(members) if p["partition"] == partition)
    booster, seconds, first_round = _fit(spec, _network_params(spec, members, port), blocks, partition)
    info = {
        "partition": partition,
        "rank": rank,
        "machines": len(members),
        "rows": rows,
        "valid_rows": valid_rows,
        "best_iteration": int(booster.best_iteration),
        "num_trees": int(booster.num_trees()),
        "best_score": {name: dict(scores) for name, scores in booster.best_score.items()},
        "seconds": seconds,
        "first_round_seconds": first_round,
        "read_seconds": read_seconds,
        "wait_seconds": wait_seconds,
    }
    yield _record("info", rank, 0, json.dumps(info))
    if rank == 0:
        model = booster.model_to_string()
        for seq, start in enumerate(range(0, len(model), _CHUNK_CHARS)):
            yield _record("model", 0, seq, model[start : start + _CHUNK_CHARS])


def task_fn(spec: TaskSpec) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The ``mapInArrow`` function of the barrier stage; errors name the task's partition."""

    def task(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import BarrierTaskContext

        ctx = BarrierTaskContext.get()
        try:
            yield from train_task(ctx, batches, spec)
        except Exception as exc:
            raise RuntimeError(
                f"{FAILURE} on partition {ctx.partitionId()}: {type(exc).__name__}: {exc}"
            ) from exc

    return task
