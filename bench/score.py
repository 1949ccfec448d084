"""Benchmark of `relisten score`: every user's top-N on both surfaces at full synthetic scale.

    python bench/score.py [--root DIR] [--raw DIR] [--users 34403 --songs 419839 --events 9934208]
                          [--candidates 200] [--top-n 20] [--nets] [--driver-memory 14g]
                          [--event-log DIR]

Prepares what scoring needs under ``--root`` when it is not there yet (each step is skipped when
its output exists, so a second run times scoring only): synthetic data, ingest, the serving
feature profile (its rows, SVD factor tables and label encoders), LightGBM (fast preset, serving
profile), the nets with ``--nets``, and the stack. Then runs `relisten score` once and prints:

* wall time and scored (user, candidate, surface) pairs per second;
* peak resident memory of the driver JVM and the Python workers together (sampled every 0.5 s);
* the split between candidate generation, features + scoring (one Spark job chain: the end-of-log
  state tables from the serving feature rows, the pair features built in the scoring tasks, and
  the ensemble in the same tasks), the seconds the tasks spent in model code (summed over tasks;
  divide by the cores for wall), the Delta writes and the coverage check.

``--event-log DIR`` writes Spark's event log of the run there (uncompressed; read it with
``bench/event_log.py`` for the wall and task time of each stage and operator). The log covers the
scoring run only (the preparation runs in processes of its own).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench/gbdt.py: no spinning OpenMP threads


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from peak_memory import PeakMemory
from scale_config import FULL, scale_overrides

from relisten_spark import lake
from relisten_spark.cli import run_command
from relisten_spark.config import Config, load_config
from relisten_spark.features import label_codes
from relisten_spark.models import registry


def overrides(args: argparse.Namespace) -> list[str]:
    """The ``--set`` items of every stage this bench runs (the event log's excluded)."""
    size = {"users": args.users, "songs": args.songs, "events": args.events}
    return [
        *scale_overrides(args.root, args.raw, size, args.partitions, args.driver_memory),
        "features.profile=serving",
        "gbdt.profile=serving",
        "nets.profile=serving",
        "stack.profile=serving",
        "scoring.profile=serving",
        f"scoring.candidates={args.candidates}",
        f"scoring.top_n={args.top_n}",
        f"scoring.run_date={args.run_date}",
    ]


def event_log_override(folder: str) -> str:
    """The ``--set`` item that makes Spark write an uncompressed event log into ``folder``."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    conf = {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": Path(folder).absolute().as_uri(),
        "spark.eventLog.compress": "false",
    }
    return "spark.conf=" + json.dumps(conf)


def prepare(sets: list[str], with_nets: bool) -> None:
    """Run the stages scoring depends on, skipping those whose output is there. Each stage runs
    in its own process, as a user runs the commands: in one process the JVM keeps the heap the
    feature job grew, and at full scale (``--driver-memory 14g``, 23 GB of memory) the kernel
    killed it while LightGBM's two tasks loaded the training rows."""
    cfg = load_config(None, sets)
    root = cfg.lake.root
    steps = [
        ("generate", (Path(cfg.data.raw_dir) / "train.csv").is_file()),
        ("ingest", lake.exists(lake.table_path(root, "bronze", "events"))),
        ("features", lake.exists(lake.table_path(root, "silver", label_codes.TABLE))),
        ("train-gbdt", _has_model(cfg, "lightgbm")),
    ]
    if with_nets:
        steps.append(("train-nets", _has_model(cfg, "jenn") and _has_model(cfg, "felu_net")))
    steps.append(("train-stack", False))
    for stage, done in steps:
        if done:
            print(f"prepare: {stage} output found, skipped")
            continue
        print(f"prepare: running {stage} ...", flush=True)
        started = time.perf_counter()
        command = [sys.executable, "-m", "relisten_spark", stage, *[f"--set={item}" for item in sets]]
        subprocess.run(command, check=True)
        print(f"prepare: {stage} done in {time.perf_counter() - started:.0f} s", flush=True)


def _has_model(cfg: Config, name: str) -> bool:
    try:
        folder = registry.resolve(cfg.models.root, name)
    except Exception:
        return False
    return registry.load_metadata(folder).get("profile") == cfg.scoring.profile


def report(summary: dict[str, Any], wall: float, peak: int, cores: int) -> None:
    seconds = summary["seconds"]
    pairs = summary["rows"]["candidate_pairs"]
    users = summary["rows"]["users"]
    model_wall = seconds["model_task_seconds"] / cores
    print()
    print(f"users scored                 {users:,}")
    print(f"scored pairs (user x cand x surface) {pairs:,}")
    print(f"recommendation rows          {summary['rows']['recommendations']:,}")
    print(f"wall time (score stage)      {wall:,.1f} s")
    print(f"scored pairs per second      {pairs / wall:,.0f} (whole stage)")
    print(f"peak memory (driver+workers) {peak / 2**30:,.2f} GiB")
    print("split:")
    print(f"  candidate generation       {seconds['candidates']:,.1f} s")
    print(f"  features + scoring         {seconds['features_and_scoring']:,.1f} s")
    task_s = seconds["model_task_seconds"]
    print(f"    of which model code      {task_s:,.1f} task-s (~{model_wall:,.1f} s wall on {cores} cores)")
    print(f"    model code pairs/s       {pairs / max(model_wall, 1e-9):,.0f} (pairs over that wall time)")
    print(f"    features (the rest)      ~{seconds['features_and_scoring'] - model_wall:,.1f} s")
    print(f"  Delta writes               {seconds['write']:,.1f} s")
    print(f"  coverage check             {seconds['coverage']:,.1f} s")
    print(f"users short of N             {summary['users_short_of_n']:,}  {summary['coverage']}")
    print(f"model versions               {summary['model_versions']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data/bench/score", help="lake, models and raw data live here")
    parser.add_argument(
        "--raw", default=None, help="reuse generated KKBOX-format files (e.g. data/bench/full)"
    )
    parser.add_argument("--users", type=int, default=FULL["users"])
    parser.add_argument("--songs", type=int, default=FULL["songs"])
    parser.add_argument("--events", type=int, default=FULL["events"])
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--top-n", type=int, default=20)
    parser.add_argument("--run-date", default="2026-11-23")
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--driver-memory", default="14g")
    parser.add_argument("--nets", action="store_true", help="train and use JENN and F-ELU-Net too")
    parser.add_argument("--event-log", default=None, help="write Spark's event log of the run here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("py4j", "pyspark"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    sets = overrides(args)
    prepare(sets, args.nets)
    cfg = load_config(None, [*sets, *([event_log_override(args.event_log)] if args.event_log else [])])
    with PeakMemory() as memory:
        started = time.perf_counter()
        ((_, summary, _),) = run_command("score", cfg)
        wall = time.perf_counter() - started
    report(summary, wall, memory.peak, os.cpu_count() or 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
