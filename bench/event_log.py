"""Where a Spark application's time went, from its event log (``spark.eventLog.compress=false``).

    python bench/event_log.py PATH [--min-seconds 1] [--operators 25]
    python bench/event_log.py PATH --stages PIPELINE_LOG [--gaps 3]

PATH: an event log file, or the folder Spark writes a rolling log into (``eventlog_v2_<app>``,
its ``events_<n>_*`` files read in order), or a folder holding one such log.

Prints the number of jobs; every stage that ran at least ``--min-seconds`` with its wall time,
summed task time (``executorRunTime``), task count and name; then the SQL operators' timing
metrics (whole-stage code generation ``duration``, sort, aggregation, hash-build, shuffle-write
and Python-worker times), summed over every query of the application and largest first. A
timing metric is task time: divide by the cores for wall time. Operators that run outside
whole-stage code generation (more than ``spark.sql.codegen.maxFields`` fields) have no
``duration`` of their own; their time is in the stage's task time only.

With ``--stages`` (the output of a ``relisten`` command run with that event log on, e.g.
``relisten pipeline --set 'spark.conf={"spark.eventLog.enabled": "true", ...}' 2> LOG``), it
prints instead where each CLI stage's wall time went: its SQL queries and their jobs, the time
with at least one query running, and the time with none. That last share is the driver's own
time: analysing and planning a query before it starts, Python, training processes (LightGBM's
barrier stage is a query; TorchDistributor's ranks are not), Delta commits and MLflow. For each
stage it also lists the longest query-free gaps (with the query that followed, usually the one
being planned), the largest physical plan, and the adaptive plan updates: each re-optimisation
posts the whole plan's description, which costs the driver time on plans of thousands of nodes.
Stage boundaries come from the CLI's ``stage NAME: starting`` / ``stage NAME: done in S s`` lines,
whose clock (local time, second resolution) must be the event log's machine's.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

TIMING_TYPES = {"timing": 1e-3, "nsTiming": 1e-9}  # metric type -> seconds per unit


@dataclass
class Log:
    jobs: int = 0
    stages: dict[int, tuple[str, int, float, float]] = field(default_factory=dict)
    metrics: dict[int, tuple[str, str, float]] = field(default_factory=dict)  # id -> operator, name, unit
    values: dict[int, float] = field(default_factory=dict)


@dataclass
class Query:
    """One SQL execution: start and end (epoch seconds), what ran it, its jobs, the nodes of its
    physical plan at the start, and its adaptive updates with their description characters."""

    start: float
    end: float = 0.0
    description: str = ""
    jobs: int = 0
    nodes: int = 0
    updates: int = 0
    update_chars: int = 0


@dataclass(frozen=True)
class Stage:
    """One CLI stage: its label and wall clock (epoch seconds)."""

    name: str
    start: float
    end: float


STAGE_LINE = re.compile(r"^(\d\d):(\d\d):(\d\d) INFO relisten: stage (.+): (starting|done in ([0-9.]+) s)$")


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


def _nodes(node: dict[str, Any]) -> int:
    return 1 + sum(_nodes(child) for child in node.get("children", []))


def read_queries(path: str) -> list[Query]:
    """The SQL executions of the log that ended, in start order (sub-executions included)."""
    queries: dict[int, Query] = {}
    for line in _lines(path):
        if "SQL" not in line[:120] and "JobStart" not in line[:40]:
            continue
        event = json.loads(line)
        kind = event["Event"]
        if kind.endswith("SparkListenerSQLExecutionStart"):
            description, nodes = event.get("description", ""), _nodes(event["sparkPlanInfo"])
            queries[event["executionId"]] = Query(event["time"] / 1000, description=description, nodes=nodes)
        elif kind.endswith("SparkListenerSQLExecutionEnd") and event["executionId"] in queries:
            queries[event["executionId"]].end = event["time"] / 1000
        elif kind.endswith("SparkListenerSQLAdaptiveExecutionUpdate") and event["executionId"] in queries:
            query = queries[event["executionId"]]
            query.updates += 1
            query.update_chars += len(event.get("physicalPlanDescription", ""))
        elif kind == "SparkListenerJobStart":
            execution = (event.get("Properties") or {}).get("spark.sql.execution.id")
            if execution is not None and int(execution) in queries:
                queries[int(execution)].jobs += 1
    return sorted((q for q in queries.values() if q.end), key=lambda q: q.start)


def read_stages(pipeline_log: str, day: datetime) -> list[Stage]:
    """The CLI stages of ``pipeline_log`` on the local calendar day of ``day`` (a clock that
    goes back by more than 12 hours has passed midnight)."""
    stages, started, last = [], {}, day.replace(hour=0, minute=0, second=0, microsecond=0)
    with open(pipeline_log) as lines:
        for line in lines:
            match = STAGE_LINE.match(line.rstrip())
            if not match:
                continue
            hours, minutes, seconds, name, _, wall = match.groups()
            at = last.replace(hour=int(hours), minute=int(minutes), second=int(seconds))
            if at < last - timedelta(hours=12):
                at += timedelta(days=1)
            last = at
            if wall is None:
                started[name] = at.timestamp()
            elif name in started:
                begin = started.pop(name)
                stages.append(Stage(name, begin, begin + float(wall)))
    return stages


def gaps(queries: list[Query], start: float, end: float) -> list[tuple[float, float, str]]:
    """(seconds, offset from ``start``, what followed) of every stretch with no query running."""
    found, covered = [], start
    for query in sorted(queries, key=lambda q: q.start):
        if query.start > covered:
            found.append((query.start - covered, covered - start, query.description[:70]))
        covered = max(covered, query.end)
    if end > covered:
        found.append((end - covered, covered - start, "(end of stage)"))
    return found


def print_stages(queries: list[Query], stages: list[Stage], shown_gaps: int) -> None:
    """One line per stage (wall, queries, jobs, seconds with and without a query running), then
    its longest gaps of at least a second, its largest plan and its adaptive plan updates."""
    print(f"{'stage':<28} {'wall s':>7} {'queries':>7} {'jobs':>5} {'query s':>8} {'no query s':>10}")
    walls, busies = 0.0, 0.0
    for stage in stages:
        inside = [q for q in queries if stage.start - 0.5 <= q.start < stage.end + 0.5]
        idle = gaps(inside, stage.start, stage.end)
        wall = stage.end - stage.start
        busy = wall - sum(seconds for seconds, _, _ in idle)
        jobs = sum(q.jobs for q in inside)
        walls, busies = walls + wall, busies + busy
        print(f"{stage.name:<28} {wall:7.1f} {len(inside):7d} {jobs:5d} {busy:8.1f} {wall - busy:10.1f}")
        longest = sorted(idle, reverse=True)[:shown_gaps]
        for seconds, offset, following in longest:
            if seconds >= 1:
                print(f"{'':<6}gap {seconds:5.1f} s at +{offset:.0f} s, then: {following}")
        if inside:
            largest = max(inside, key=lambda q: q.nodes)
            updates = sum(q.updates for q in inside)
            chars = sum(q.update_chars for q in inside)
            print(
                f"{'':<6}largest plan {largest.nodes:,} nodes ({largest.description[:50]}); "
                f"{updates:,} adaptive plan updates carrying {chars / 1e6:,.1f} MB of plan text"
            )
    print(f"{'all stages':<28} {walls:7.1f} {'':>7} {'':>5} {busies:8.1f} {walls - busies:10.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--operators", type=int, default=25)
    parser.add_argument(
        "--stages", metavar="PIPELINE_LOG", help="per CLI stage: its queries and the time with none running"
    )
    parser.add_argument("--gaps", type=int, default=3, help="query-free gaps shown per stage (--stages)")
    args = parser.parse_args()
    if args.stages:
        queries = read_queries(args.file)
        if not queries:
            print(f"no SQL executions in {args.file}", file=sys.stderr)
            return 1
        print_stages(queries, read_stages(args.stages, datetime.fromtimestamp(queries[0].start)), args.gaps)
        return 0
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
