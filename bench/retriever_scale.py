"""Benchmark: the retriever at full synthetic scale (prints figures; not a test).

Defaults: 9,934,208 events, 34,403 users, 419,839 songs (the generator at full KKBOX scale).

1. prepare: ``generate`` and ``ingest`` under ``--root`` (each skipped when its output is there);
2. the training sequences once (``write_sequences``), then per ``--processes`` value one
   training of ``--epochs`` epochs with that many DDP ranks (``TorchDistributor``, gloo on CPU;
   ``--in-batch-negatives`` caps the in-batch negatives, 4096 by default: uncapped, a batch of 128
   full sequences scores ~25.6k positions against ~15k distinct negatives per step):
   training sequences per second, seconds per epoch, wall time and peak memory (this process,
   the JVM, the Python workers and the ranks, summed); ``--processes 0`` trains nothing and
   measures the latest trained version;
3. the last version's full-ranking evaluation, the one ``train-retriever`` runs: candidate
   recall@200 of the eval events for the retriever, popularity, Spark ALS, and SVD where the lake
   has serving features;
4. ``relisten candidates`` with the retriever as the only source: wall time for every user and
   peak memory (target: at most 120 s for 34,403 users on 2 cores).

``--skip-evaluation`` and ``--skip-candidates`` leave out steps 3 and 4.

    .venv/bin/python bench/retriever_scale.py --root bench/out/full
    .venv/bin/python bench/retriever_scale.py --root bench/out/small --users 2000 --songs 8000 --events 100000
    .venv/bin/python bench/retriever_scale.py --root bench/out/full --processes 0 --skip-evaluation
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from peak_memory import PeakMemory
from scale_config import FULL, scale_overrides

from relisten_spark import lake
from relisten_spark.cli import run_command
from relisten_spark.config import Config, load_config
from relisten_spark.retrieval import nearest
from relisten_spark.retrieval.job import build_job
from relisten_spark.retrieval.quality import evaluate_retriever
from relisten_spark.retrieval.sequences import write_sequences
from relisten_spark.retrieval.train import train
from relisten_spark.runtime import use_checkpoint_dir
from relisten_spark.session import build_session


def config(args: argparse.Namespace, *extra: str) -> Config:
    size = {"users": args.users, "songs": args.songs, "events": args.events}
    return load_config(
        None,
        [
            *scale_overrides(args.root, None, size, args.partitions, args.driver_memory),
            f"retriever.epochs={args.epochs}",
            f"retriever.in_batch_negatives={args.in_batch_negatives or 'null'}",
            "retriever.early_stopping_patience=0",
            "scoring.candidate_sources={retriever: 200, svd: 0, als: 0, popular: 0}",
            *extra,
        ],
    )


def prepare(cfg: Config) -> None:
    done = {
        "generate": (Path(cfg.data.raw_dir) / "train.csv").is_file(),
        "ingest": lake.exists(lake.table_path(cfg.lake.root, "bronze", "events")),
    }
    for stage, found in done.items():
        if found:
            print(f"prepare: {stage} output found, skipped", flush=True)
            continue
        for label, _summary, seconds in run_command(stage, cfg):
            print(f"prepare: {label} done in {seconds:.0f} s", flush=True)


def timed_training(args: argparse.Namespace, spark: Any) -> str:
    """Train once per --processes value on the same sequences; the last version."""
    cfg = config(args)
    work = Path(cfg.models.root).absolute() / ".retriever-scale-work"
    started = time.perf_counter()
    seqs = write_sequences(spark, cfg, work)
    print(f"sequences written in {time.perf_counter() - started:.1f} s", flush=True)
    version = ""
    try:
        for processes in args.processes:
            run_cfg = config(args, f"retriever.num_processes={processes}")
            job = build_job(run_cfg, seqs, f"bench-{processes}", {"data_source": "synthetic"})
            with PeakMemory() as memory:
                started = time.perf_counter()
                result = train(job, run_cfg)
                wall = time.perf_counter() - started
            version = result["version"]
            print(
                f"\n{processes} process(es): {result['sequences_per_s']:.1f} training sequences/s, "
                f"{result['seconds_per_epoch']:.1f} s per epoch ({result['epochs_run']} epoch(s)), "
                f"wall {wall:.1f} s with start-up, peak memory {memory.peak / 2**30:.2f} GiB, "
                f"val ndcg@10 {result['val_ndcg@10']:.4f}",
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return version


def timed_evaluation(spark: Any, cfg: Config, version: str) -> None:
    started = time.perf_counter()
    evaluation = evaluate_retriever(spark, cfg, version)
    print(f"\nevaluation of {version} ({time.perf_counter() - started:.1f} s), eval events of the holdout:")
    print(f"  phases {evaluation['seconds']}")
    for model, row in sorted(evaluation["models"].items()):
        figures = ", ".join(f"{k} {v:.4f}" for k, v in sorted(row.items()))
        print(f"  {model:24} {figures}")


def timed_candidates(cfg: Config) -> None:
    with PeakMemory() as memory:
        [(_label, summary, seconds)] = run_command("candidates", cfg)
    rows = summary["rows"]
    print(
        f"\ncandidates: {rows['users']:,} users, {rows['candidates']:,} rows in {seconds:.1f} s "
        f"(stage wall, retriever only; phases {summary['seconds']}), "
        f"peak memory {memory.peak / 2**30:.2f} GiB",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", default="bench/out/full", help="lake, models and raw data live here")
    parser.add_argument("--users", type=int, default=FULL["users"])
    parser.add_argument("--songs", type=int, default=FULL["songs"])
    parser.add_argument("--events", type=int, default=FULL["events"])
    parser.add_argument("--epochs", type=int, default=1, help="training epochs per run")
    parser.add_argument(
        "--processes",
        type=lambda s: [int(p) for p in s.split(",")],
        default=[1, 2],
        help="e.g. 1,2; 0: no training, the latest version",
    )
    parser.add_argument(
        "--in-batch-negatives",
        type=int,
        default=4096,
        help="retriever.in_batch_negatives; 0 = every position's next item (~25.6k per batch here)",
    )
    parser.add_argument("--skip-evaluation", action="store_true", help="no full-ranking evaluation")
    parser.add_argument("--skip-candidates", action="store_true", help="no `relisten candidates` run")
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--driver-memory", default="8g")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("py4j", "pyspark"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    cfg = config(args)
    prepare(cfg)
    spark = build_session(cfg.spark)
    use_checkpoint_dir(spark, cfg.lake.root)
    if args.processes == [0]:  # time the evaluation and the candidates of the latest version
        version = nearest.resolve_retriever(cfg.models.root, "latest").name
    else:
        version = timed_training(args, spark)

    if not args.skip_evaluation:
        timed_evaluation(spark, cfg, version)
    if not args.skip_candidates:
        timed_candidates(cfg)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
