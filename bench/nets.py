"""Benchmark: JENN and F-ELU-Net training throughput with 1 and 2 DDP processes on this machine.

Builds a synthetic silver.features + manifest with the thesis's input widths (FEATURES.md §3.1:
21 categorical inputs, 38 context numerics, usr_feat 58, song_feat 13, the 48/16-dim SVD groups
for user, song and the previous/next song), writes the nets' input shards once, then trains each
net for a fixed number of epochs (thesis architecture and batch) with each process count and
prints training rows per second (total and per process; wall clock of the slowest rank), rows
per CPU second (all ranks' process CPU time: comparable on a busy machine), validation AUC and
the peak resident memory of a rank and of the driver.

    .venv/bin/python bench/nets.py --rows 300000 --epochs 2 --processes 1,2
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import sys
import time
from pathlib import Path

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from relisten_spark import lake, schemas
from relisten_spark.config import Config, load_config
from relisten_spark.models.ddp.inputs import prepare_inputs, work_folder
from relisten_spark.models.ddp.job import build_job
from relisten_spark.models.ddp.launch import launch
from relisten_spark.session import build_session

USERS, SONGS, ARTISTS = 30_000, 200_000, 40_000
CONTEXT_CATS = {
    "source_type": 13,
    "source_screen_name": 23,
    "source_system_tab": 10,
    "before_source_type": 13,
    "after_source_type": 13,
    "before_source_screen_name": 23,
    "after_source_screen_name": 23,
    "before_language": 10,
    "after_language": 10,
}


def _unit(code: Column, j: int, salt: float) -> Column:
    """A deterministic pseudo-random value in [-1, 1] for an entity code and component ``j``."""
    return F.sin(code.cast("double") * (12.9898 + salt) + j * 78.233)


def manifest_rows(profile: str) -> list[tuple]:
    def cat(name, entity, card):
        return (name, "ids", "int", "STATIC", profile, entity, True, card, True, True, None, None, None)

    def num(name, family, entity):
        component = int(name.rsplit("_", 1)[1]) if "_component_" in name else None
        return (
            name,
            family,
            "double",
            "BATCH",
            profile,
            entity,
            False,
            None,
            True,
            True,
            None,
            "mean",
            component,
        )

    rows = [cat("msno_code", "user", USERS), cat("city", "user", 21), cat("gender", "user", 3)]
    rows += [
        cat("registered_via", "user", 6),
        cat("artist_name", "song", ARTISTS),
        cat("language", "song", 10),
    ]
    rows += [cat("cc", "song", 100), cat("first_genre_id", "song", 170), cat("second_genre_id", "song", 170)]
    rows += [cat(name, "context", card) for name, card in CONTEXT_CATS.items()]
    rows += [cat("song_code", "song", SONGS), cat("before_song_code", "context", SONGS)]
    rows += [cat("after_song_code", "context", SONGS)]
    rows += [num(f"context_num_{j}", "context", "context") for j in range(38)]
    rows += [num(f"usr_feat_{j}", "member", "user") for j in range(58)]
    rows += [num(f"song_feat_{j}", "song", "song") for j in range(13)]
    rows += [num(f"member_component_{j}", "svd_member", "user") for j in range(48)]
    rows += [num(f"member_artist_component_{j}", "svd_member_artist", "user") for j in range(16)]
    for prefix, entity in (("", "song"), ("before_", "context"), ("after_", "context")):
        rows += [num(f"{prefix}song_component_{j}", "svd_song", entity) for j in range(48)]
        rows += [num(f"{prefix}artist_component_{j}", "svd_artist", entity) for j in range(16)]
    return rows


def write_lake(spark: SparkSession, cfg: Config, rows: int, seed: int) -> None:
    """silver.features (profile full) with a planted user x song signal, and its manifest."""
    user = F.floor(F.rand(seed) * USERS).cast("int")
    song = F.floor(F.pow(F.rand(seed + 1), 2) * SONGS).cast("int")
    base = spark.range(rows, numPartitions=8).select(
        F.col("id").alias("idx"), user.alias("u"), song.alias("s"), F.rand(seed + 2).alias("r")
    )
    base = base.withColumn("bs", F.when(F.col("idx") > 0, F.col("s") - 1).otherwise(F.col("s")))
    base = base.withColumn("as", (F.col("s") * 7 + 3) % SONGS)
    dot = sum(_unit(F.col("u"), j, 0.0) * _unit(F.col("s"), j, 1.0) for j in range(48)) / 8.0
    ctx = [F.rand(seed + 10 + j) for j in range(38)]
    logit = 2.0 * dot + (ctx[0] - 0.5) * 2 + (F.col("u") % 5 - 2) * 0.2
    cols = [
        "idx",
        F.concat(F.lit("u"), F.col("u")).alias("msno"),
        F.concat(F.lit("s"), F.col("s")).alias("song_id"),
        F.when(F.col("idx") < int(rows * 0.85), "train").otherwise("test").alias("split"),
        F.when(F.col("idx") < int(rows * 0.85), (F.col("r") < 1 / (1 + F.exp(-logit))).cast("int")).alias(
            "target"
        ),
        F.col("u").alias("msno_code"),
        (F.col("u") % 21).alias("city"),
        (F.col("u") % 3).alias("gender"),
        (F.col("u") % 6).alias("registered_via"),
        (F.col("s") % ARTISTS).alias("artist_name"),
        (F.col("s") % 10).alias("language"),
        (F.col("s") % 100).alias("cc"),
        (F.col("s") % 170).alias("first_genre_id"),
        ((F.col("s") / 170).cast("int") % 170).alias("second_genre_id"),
        F.col("s").alias("song_code"),
        F.col("bs").alias("before_song_code"),
        F.col("as").alias("after_song_code"),
    ]
    cols += [
        F.floor(F.rand(seed + 60 + k) * card).cast("int").alias(n)
        for k, (n, card) in enumerate(CONTEXT_CATS.items())
    ]
    cols += [c.alias(f"context_num_{j}") for j, c in enumerate(ctx)]
    cols += [(_unit(F.col("u"), j, 5.0) * 3 + 10).alias(f"usr_feat_{j}") for j in range(58)]
    cols += [(_unit(F.col("s"), j, 6.0) * 1e4).alias(f"song_feat_{j}") for j in range(13)]
    cols += [(_unit(F.col("u"), j, 0.0) / 7).cast("float").alias(f"member_component_{j}") for j in range(48)]
    cols += [
        (_unit(F.col("u"), j, 2.0) / 4).cast("float").alias(f"member_artist_component_{j}") for j in range(16)
    ]
    for prefix, code in (("", "s"), ("before_", "bs"), ("after_", "as")):
        cols += [
            (_unit(F.col(code), j, 1.0) / 7).cast("float").alias(f"{prefix}song_component_{j}")
            for j in range(48)
        ]
        artist = F.col(code) % ARTISTS
        cols += [
            (_unit(artist, j, 3.0) / 4).cast("float").alias(f"{prefix}artist_component_{j}")
            for j in range(16)
        ]
    features = base.select(*cols).withColumn("profile", F.lit("full"))
    lake.write(
        spark, features, lake.table_path(cfg.lake.root, "silver", "features"), partition_by=["profile"]
    )
    manifest = spark.createDataFrame(manifest_rows("full"), schemas.MANIFEST)
    lake.write(
        spark,
        manifest,
        lake.table_path(cfg.lake.root, "silver", "feature_manifest"),
        partition_by=["profile"],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000, help="events (85%% train, 15%% test)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--processes", default="1,2", help="comma-separated DDP process counts")
    parser.add_argument("--models", default="jenn,felu_net")
    parser.add_argument("--batch-size", type=int, default=8192, help="global batch (thesis: 8192)")
    parser.add_argument("--out", default="bench/out/nets", help="lake and models of the benchmark")
    parser.add_argument("--reuse", action="store_true", help="reuse the lake of a previous run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("py4j", "pyspark"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    out = Path(args.out).absolute()
    overrides = [
        "spark.master=local[2]",
        "spark.shuffle_partitions=8",
        "spark.driver_memory=2g",
        f"lake.root={out / 'lake'}",
        f"models.root={out / 'models'}",
        "nets.preset=thesis",
        f"nets.epochs={args.epochs}",
        f"nets.batch_size={args.batch_size}",
        "nets.early_stopping_patience=0",
    ]
    cfg = load_config(None, overrides)
    spark = build_session(cfg.spark)
    started = time.perf_counter()
    if not (args.reuse and lake.exists(lake.table_path(cfg.lake.root, "silver", "features"))):
        write_lake(spark, cfg, args.rows, seed=11)
    generated = time.perf_counter() - started
    started = time.perf_counter()
    work = work_folder(cfg, "bench")
    shutil.rmtree(work, ignore_errors=True)  # the shards of an earlier benchmark run
    prepared = prepare_inputs(spark, cfg, "full", work)
    prepare_s = time.perf_counter() - started

    load_before = os.getloadavg()[0]
    rows = []
    for processes in [int(p) for p in args.processes.split(",")]:
        for kind in args.models.split(","):
            nets_cfg = cfg.nets.model_copy(update={"models": [kind], "num_processes": processes})
            job = build_job(cfg.model_copy(update={"nets": nets_cfg}), prepared, f"bench-{kind}-{processes}")
            wall = time.perf_counter()
            result = launch(job, processes, True, False)[kind]
            wall = time.perf_counter() - wall
            rows.append({"model": kind, "processes": processes, "launch_s": wall, **result})

    threads = max(1, (os.cpu_count() or 1))
    print(
        f"\nnets benchmark: {prepared.rows['fit']} training rows/epoch, {len(prepared.inputs.categorical)} "
        f"categorical + {len(prepared.inputs.numeric)} numeric inputs, thesis architecture, global batch "
        f"{args.batch_size}, {args.epochs} epochs, {threads} cores (threads per process = cores / processes)"
    )
    print(
        f"data generation {generated:.0f} s, Spark prepare (statistics + input shards) {prepare_s:.0f} s, "
        f"1-min load average {load_before:.1f} before training, {os.getloadavg()[0]:.1f} after"
    )
    header = (
        f"{'model':9} {'procs':>5} {'rows/s':>9} {'rows/s/proc':>11} {'rows/CPU s':>10} {'train s':>8} "
        f"{'launch s':>8} {'val_auc':>7} {'peak RSS/rank MB':>16}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['model']:9} {r['processes']:>5} {r['rows_per_s']:>9.0f} "
            f"{r['rows_per_s_per_process']:>11.0f} {r['rows_per_cpu_s']:>10.0f} {r['train_seconds']:>8.1f} "
            f"{r['launch_s']:>8.1f} {r['val_auc']:>7.4f} {r['peak_rss_mb_per_process']:>16.0f}"
        )
    driver_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"driver (Python) peak RSS {driver_mb:.0f} MB")
    (out / "results.json").write_text(json.dumps(rows, indent=2, default=str))
    shutil.rmtree(work, ignore_errors=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
