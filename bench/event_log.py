"""Where a Spark application's time went, from its event log (``spark.eventLog.compress=false``).

    python bench/event_log.py PATH [--min-seconds 1] [--operators 25]

PATH: an event log file, or the folder Spark writes a rolling log into (``eventlog_v2_<app>``,
its ``events_<n>_*`` files read in order), or a folder holding one such log.

Prints the number of jobs; every stage that ran at least ``--min-seconds`` with its wall time,
summed task time (``executorRunTime``), task count and name; then the SQL operators' timing
metrics (whole-stage code generation ``duration``, sort, aggregation, hash-build, shuffle-write
and Python-worker times), summed over every query of the application and largest first. A
timing metric is task time: divide by the cores for wall time. Operators that run outside
whole-stage code generation (more than ``spark.sql.codegen.maxFields`` fields) have no
``duration`` of their own; their time is in the stage's task time only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TIMING_TYPES = {"timing": 1e-3, "nsTiming": 1e-9}  # metric type -> seconds per unit


@dataclass
class Log:
    jobs: int = 0
    stages: dict[int, tuple[str, int, float, float]] = field(default_factory=dict)
    metrics: dict[int, tuple[str, str, float]] = field(default_factory=dict)  # id -> operator, name, unit
    values: dict[int, float] = field(default_factory=dict)


def _fused(node: dict[str, Any]) -> list[str]:
    """The operators a whole-stage code generation node runs (down to its inputs), top first."""
    names = []
    for child in node.get("children", []):
        if child["nodeName"] != "InputAdapter":
            names += [child["nodeName"], *_fused(child)]
    return names


def _label(node: dict[str, Any]) -> str:
    if node["nodeName"].startswith("WholeStageCodegen"):
        fused = _fused(node)
        return "codegen: " + " < ".join(fused[:4]) + (" < ..." if len(fused) > 4 else "")
    return node["nodeName"]


def _plan_metrics(node: dict[str, Any]) -> Iterator[tuple[int, str, str, float]]:
    """(accumulator id, operator, metric, seconds per unit) of every timing metric in a plan tree."""
    for metric in node.get("metrics", []):
        unit = TIMING_TYPES.get(metric.get("metricType", ""))
        if unit is not None:
            yield metric["accumulatorId"], _label(node), metric["name"], unit
    for child in node.get("children", []):
        yield from _plan_metrics(child)


def log_files(path: str) -> list[Path]:
    """The event log files at ``path`` (see the module docstring), in writing order."""
    where = Path(path)
    if where.is_file():
        return [where]
    rolling = sorted(where.glob("eventlog_v2_*")) or [where]
    files = sorted(rolling[-1].glob("events_*"), key=lambda f: int(f.name.split("_")[1]))
    return files or sorted(p for p in where.iterdir() if p.is_file())


def _lines(path: str) -> Iterator[str]:
    for file in log_files(path):
        with open(file) as lines:
            yield from lines


def read(path: str) -> Log:
    log = Log()
    for line in _lines(path):
        event = json.loads(line)
        kind = event["Event"]
        if kind == "SparkListenerJobStart":
            log.jobs += 1
        elif kind.endswith("SparkListenerSQLExecutionStart") or kind.endswith(
            "SparkListenerSQLAdaptiveExecutionUpdate"
        ):
            for acc, operator, name, unit in _plan_metrics(event["sparkPlanInfo"]):
                log.metrics[acc] = (operator, name, unit)
        elif kind == "SparkListenerStageCompleted":
            info = event["Stage Info"]
            accs = {a["ID"]: a.get("Value") for a in info.get("Accumulables", [])}
            by_name = {a.get("Name"): a.get("Value") for a in info.get("Accumulables", [])}
            run = float(by_name.get("internal.metrics.executorRunTime") or 0)
            wall = (info.get("Completion Time", 0) - info.get("Submission Time", 0)) / 1000
            log.stages[info["Stage ID"]] = (info["Stage Name"], info["Number of Tasks"], wall, run / 1000)
            for acc, value in accs.items():
                try:
                    log.values[acc] = max(log.values.get(acc, 0.0), float(value))
                except (TypeError, ValueError):
                    continue
    return log


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--operators", type=int, default=25)
    args = parser.parse_args()
    log = read(args.file)
    print(f"jobs {log.jobs}, stages {len(log.stages)}")
    print(f"{'stage':>6} {'wall s':>8} {'task s':>8} {'tasks':>6}  name")
    for sid, (name, tasks, wall, run) in sorted(log.stages.items()):
        if wall >= args.min_seconds:
            print(f"{sid:>6} {wall:8.1f} {run:8.1f} {tasks:>6}  {name[:70]}")
    total_wall = sum(s[2] for s in log.stages.values())
    total_run = sum(s[3] for s in log.stages.values())
    print(f"{'all':>6} {total_wall:8.1f} {total_run:8.1f}  (stages overlap: wall sums may exceed the run's)")
    summed: dict[tuple[str, str], float] = defaultdict(float)
    for acc, (operator, name, unit) in log.metrics.items():
        summed[(operator, name)] += log.values.get(acc, 0.0) * unit
    print("\noperator timing metrics (task seconds, all queries):")
    for (operator, name), seconds in sorted(summed.items(), key=lambda kv: -kv[1])[: args.operators]:
        if seconds > 0:
            print(f"{seconds:9.1f}  {operator[:80]:<80} {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
