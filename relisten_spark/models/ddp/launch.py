"""Start the ranks with ``TorchDistributor`` and take rank 0's result from it.

``TorchDistributor`` (``local_mode`` for one machine, barrier tasks on a cluster;
``num_processes`` and ``use_gpu`` from config; gloo on CPU, NCCL on GPU) runs
:func:`~relisten_spark.models.ddp.worker.train_worker` on every rank, and ``run`` returns a
worker's return value:

* on a cluster (``local_mode=False``) one barrier task per rank runs torchrun with one process
  and ``RANK`` = its partition id, and ``run`` returns partition 0's value: rank 0's;
* in ``local_mode`` torchrun starts all ranks as processes of one script, and each pickles its
  return value to the *same* output file, so ``run`` returns the value of whichever rank wrote
  last, not necessarily rank 0's.

So every rank returns the same value: rank 0's results (``{net: {version, val_auc, ...}}``)
as JSON text, broadcast to the other ranks before they return. Equal strings pickle to equal
bytes, so in local mode the shared file holds rank 0's result whichever write lands last, and
the result never goes through a file of ours in either mode.

Errors still do, in both modes: a failing rank returns nothing, and the distributor reports
only the last 100 lines of torchrun's output (local mode) or Spark's task failure (cluster),
where the first failure may be missing or buried under the other ranks' shutdown messages. A
failing rank writes its stage and one-line error to ``<job.error_dir>/error-rank<r>.json``
(shared storage on a cluster, like the registry) before torchrun stops the others, and
:func:`launch` raises the earliest one as a single-line
:class:`~relisten_spark.errors.TrainingError`, never a hang.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from relisten_spark.errors import TrainingError
from relisten_spark.models.ddp.job import TrainJob
from relisten_spark.models.ddp.worker import ERROR_FILES, train_worker


def launch(job: TrainJob, num_processes: int, local_mode: bool, use_gpu: bool) -> dict[str, dict[str, Any]]:
    """Run :func:`train_worker` on ``num_processes`` ranks; return rank 0's result per model.

    Raises :class:`TrainingError` with the first failing rank's error.
    """
    results = run_ranks(train_worker, job, job.error_dir, "train-nets", num_processes, local_mode, use_gpu)
    for params in job.params:
        if params.kind not in results:
            raise TrainingError(f"train-nets: rank 0 returned no result for {params.kind}")
    return {params.kind: results[params.kind] for params in job.params}


def run_ranks(
    worker: Callable[[Any], str],
    job: Any,
    error_dir: str,
    stage: str,
    num_processes: int,
    local_mode: bool,
    use_gpu: bool,
) -> dict[str, Any]:
    """Run ``worker(job)`` on ``num_processes`` ranks; return rank 0's JSON result as a dict.

    ``worker`` returns the same JSON text on every rank and, when it fails, leaves its error in
    ``<error_dir>/error-rank<r>.json`` (:func:`~relisten_spark.models.ddp.worker.run_rank`);
    the earliest one is raised as a :class:`TrainingError` starting with ``stage``.
    """
    from pyspark.ml.torch.distributor import TorchDistributor

    errors = Path(error_dir)
    errors.mkdir(parents=True, exist_ok=True)
    try:
        distributor = TorchDistributor(num_processes=num_processes, local_mode=local_mode, use_gpu=use_gpu)
        try:
            with _passive_openmp():
                returned = distributor.run(worker, job)
        except Exception as exc:
            raise TrainingError(_failure(errors, exc, stage)) from exc
        failure = _first_error(errors, stage)
        if failure:
            raise TrainingError(failure)
        return json.loads(returned) if isinstance(returned, str) else {}
    finally:
        shutil.rmtree(errors, ignore_errors=True)


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


def _first_error(errors: Path, stage: str) -> str | None:
    found = [json.loads(p.read_text()) for p in errors.glob(ERROR_FILES)]
    if not found:
        return None
    first = min(found, key=lambda e: e["time"])
    return f"{stage}: rank {first['rank']} failed while {first['stage']}: {first['error']}"


def _failure(errors: Path, exc: Exception, stage: str) -> str:
    found = _first_error(errors, stage)
    if found:
        return found
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return f"{stage}: distributed training failed: {lines[-1] if lines else type(exc).__name__}"
