"""Benchmark of `relisten ingest` + `relisten features` end to end on synthetic KKBOX data.

    python bench/features.py [--users N --songs N --events N --seed S --raw DIR --lake DIR
                              --profile full|serving --driver-memory 12g --skip-ingest
                              --set KEY=VALUE ...]

Defaults to the full KKBOX scale (34,403 users, 419,839 songs, 9,934,208 events); the CSV files
are generated into ./data/bench/full unless they are already there (reused). Prints the wall time
of ingest and of features (with the job's phase seconds), and the peak resident memory of the
driver JVM plus every Python worker (psutil over the process tree, sampled every 0.5 s in a
thread). Targets (issue 4): features <= 15 minutes and <= 16 GB on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from peak_memory import PeakMemory

from relisten_spark.config import load_config
from relisten_spark.data import kkbox
from relisten_spark.data.synthetic.generator import generate
from relisten_spark.features import build
from relisten_spark.session import build_session

FULL = {"users": 34_403, "songs": 419_839, "events": 9_934_208}
GIB = 1024**3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for key, value in FULL.items():
        parser.add_argument(f"--{key}", type=int, default=value)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--raw", default=None, help="CSV folder (default ./data/bench/full or ./data/bench/<events>)"
    )
    parser.add_argument("--lake", default="./data/bench/lake")
    parser.add_argument("--profile", choices=["full", "serving"], default="full")
    parser.add_argument("--driver-memory", default="12g")
    parser.add_argument("--skip-ingest", action="store_true", help="reuse the bronze tables of --lake")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE config override (repeatable)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    full_scale = (args.users, args.songs, args.events) == tuple(FULL.values())
    raw = Path(args.raw or f"./data/bench/{'full' if full_scale else args.events}")
    if not (raw / "train.csv").exists():
        started = time.perf_counter()
        generate(raw, args.users, args.songs, args.events, args.seed)
        print(f"generate: {time.perf_counter() - started:.1f} s into {raw}")
    else:
        print(f"reusing the CSV files in {raw}")
    cfg = load_config(
        None,
        [
            "spark.master=local[2]",
            f"spark.driver_memory={args.driver_memory}",
            "spark.shuffle_partitions=8",
            f"lake.root={args.lake}",
            f"data.raw_dir={raw}",
            f"features.profile={args.profile}",
            *args.set,
        ],
    )
    with PeakMemory() as memory:
        spark = build_session(cfg.spark)
        if not args.skip_ingest:
            started = time.perf_counter()
            summary = kkbox.run(spark, cfg)
            print(f"ingest: {time.perf_counter() - started:.1f} s  {json.dumps(summary, default=str)}")
        ingest_peak = memory.peak
        started = time.perf_counter()
        summary = build.run(spark, cfg)
        elapsed = time.perf_counter() - started
        spark.stop()
    print(f"features [{args.profile}]: {elapsed:.1f} s ({elapsed / 60:.1f} min)  {json.dumps(summary)}")
    print(
        f"peak RSS driver JVM + Python workers: ingest {ingest_peak / GIB:.2f} GiB, "
        f"overall {memory.peak / GIB:.2f} GiB"
    )
    print(f"load average during the run: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
