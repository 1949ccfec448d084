"""Run ids, and ``gold.runs`` (schemas.RUNS): one row per stage run (config hash, model and input
versions, row counts, timings, outcome).

Every stage names its outputs' run with :func:`new_run_id`. gold.runs is written (appended) by
the command line (``relisten_spark.cli``) after each stage, from the stage's summary; it is read by
people and monitoring (a Delta table to query), not by another stage."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import SparkSession

from relisten_spark import lake, schemas
from relisten_spark.config import Config


@dataclass(frozen=True)
class RunFlags:
    """The command line's switches for one command run: ``force`` rebuilds although the
    inputs and config equal the last successful run's; ``dry_run`` lists what would change."""

    force: bool = False
    dry_run: bool = False


_FLAGS: ContextVar[RunFlags | None] = ContextVar("relisten_run_flags", default=None)


def flags() -> RunFlags:
    """The switches of the command running now (defaults outside the command line)."""
    return _FLAGS.get() or RunFlags()


@contextmanager
def using_flags(run_flags: RunFlags) -> Iterator[None]:
    """Run the block with ``run_flags`` as :func:`flags`."""
    token = _FLAGS.set(run_flags)
    try:
        yield
    finally:
        _FLAGS.reset(token)


def new_run_id(command: str) -> str:
    """A sortable, unique run id: ``<command>-<UTC timestamp>-<8 hex>``. The lake's later commits
    in this context carry it and ``command`` in their custom metadata (:func:`lake.tag_commits`)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_id = f"{command}-{stamp}-{uuid.uuid4().hex[:8]}"
    lake.tag_commits(run_id, command)
    return run_id


def runs_path(cfg: Config) -> str:
    return lake.table_path(cfg.lake.root, "gold", "runs")


def _numbers(summary: Mapping[str, Any], kind: type) -> dict[str, Any]:
    """Flatten ``summary`` to ``{dotted key: number}``, keeping only ints (kind=int) or floats."""
    out: dict[str, Any] = {}
    for key, value in summary.items():
        if isinstance(value, Mapping):
            out.update({f"{key}.{k}": v for k, v in _numbers(value, kind).items()})
        elif isinstance(value, bool):
            continue
        elif (kind is int and isinstance(value, int)) or (kind is float and isinstance(value, float)):
            out[key] = value
    return out


def record_run(
    spark: SparkSession,
    cfg: Config,
    run_id: str,
    command: str,
    started: datetime,
    finished: datetime,
    status: str,
    message: str,
    summary: Mapping[str, Any],
) -> int:
    """Append one row to gold.runs; returns the table version.

    ``summary`` is the stage's summary: its integer leaves become ``row_counts``, float leaves
    ``timings_s``, and the optional mappings ``model_versions`` / ``input_versions`` are kept.
    """
    counts = _numbers({k: v for k, v in summary.items() if k not in ("input_versions",)}, int)
    timings = _numbers(summary, float)
    timings["total"] = (finished - started).total_seconds()
    row = (
        run_id,
        command,
        started,
        finished,
        cfg.digest(),
        {str(k): str(v) for k, v in dict(summary.get("model_versions") or {}).items()},
        {str(k): int(v) for k, v in dict(summary.get("input_versions") or {}).items()},
        counts,
        timings,
        status,
        message,
    )
    df = spark.createDataFrame([row], schemas.RUNS)
    return lake.write(spark, df, runs_path(cfg), mode="append")
