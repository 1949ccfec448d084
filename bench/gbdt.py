"""LightGBM training benchmarks (prints figures; not a test).

(a) ``--part a``: the barrier trainer with 2 tasks (1 thread each) against plain single-process
    ``lightgbm.train`` with 2 threads, on the same generated rows and parameters (fast preset):
    wall times, their ratio and the eval AUC of both, side by side.
(predict) ``--part predict``: rows per second of LightGBM inference alone, ``Booster.predict``
    against the model compiled by lleaves (:mod:`relisten_spark.models.gbdt.compiled`), one
    thread each as in a scoring task, on ``--rows`` rows x ``--features`` columns (a fast-preset
    model trained on generated rows, or ``--model`` a model.txt), with the compile time and the
    largest difference between the two.
(b) ``--part b``: seconds per 100 boosting rounds and peak memory with the thesis preset
    (``--preset thesis_exact``: the recorded parameters, without GOSS) on the
    full-scale features of a lake (``--lake``, silver.features, profile ``full``). The thesis
    reports 258 s per 100 rounds on 7.06M rows x 385 features with 4 threads and about 50 GB.

(levers) ``--part levers``: LightGBM's own speed levers one at a time on the ``full``
    features of a lake (``--lake``), ``--rounds`` rounds, one ``lightgbm.train`` process with 2
    threads, each laid over the ``thesis_exact`` preset: quantized gradients, GOSS, ``max_bin``,
    column- or row-wise histograms, a histogram pool cap, float64 against float32 inputs, and what
    the ``thesis`` preset changes (GOSS + column-wise). Prints the seconds (binning and training
    apart) and the eval AUC of each beside the exact preset's own.

    python bench/gbdt.py --part a --rows 500000 --features 100
    python bench/gbdt.py --part predict --rows 200000 --features 305
    python bench/gbdt.py --part b --lake ./lakehouse --tasks 2 [--param enable_bundle=false]
    python bench/gbdt.py --part levers --lake ./lakehouse --rounds 100
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Before any OpenMP runtime loads (lightgbm here, and in the Python workers, which inherit the
# environment): on a shared, oversubscribed machine spinning OpenMP threads make a 2-thread
# lightgbm.train ~20x slower than a passive wait. On dedicated hardware set it to ACTIVE.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import lightgbm as lgb
import numpy as np
from peak_memory import PeakMemory
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from sklearn.metrics import roc_auc_score

from relisten_spark import lake
from relisten_spark.config import Config, GbdtConfig, load_config
from relisten_spark.models import presets
from relisten_spark.models.feature_inputs import features_path
from relisten_spark.models.gbdt.barrier import train_barrier
from relisten_spark.models.gbdt.compiled import BoosterPredictor, load_predictor
from relisten_spark.models.gbdt.inputs import TrainRows, lightgbm_params, model_columns
from relisten_spark.models.gbdt.task import TRAIN_DTYPE
from relisten_spark.scoring import attribution
from relisten_spark.session import build_session
from relisten_spark.splits import assign_eval_split


def _session(tasks: int, memory: str, *extra: str) -> SparkSession:
    cfg = load_config(None, [f"spark.master=local[{tasks}]", f"spark.driver_memory={memory}", *extra])
    return build_session(cfg.spark)


def generate(spark: SparkSession, path: str, rows: int, features: int, seed: int) -> None:
    """A features-like table: idx, target (planted logistic signal on 8 columns), f0..f{n-1}."""
    df = spark.range(rows).select(F.col("id").alias("idx"))
    cols = [F.randn(seed + i).alias(f"f{i}") for i in range(features)]
    df = df.select("idx", *cols)
    logit = (
        1.2 * F.col("f0")
        - 0.9 * F.col("f1")
        + 0.6 * F.col("f2") * F.col("f3")
        + 0.5 * F.when(F.col("f4") > 0.5, 1.0).otherwise(-0.2)
        + 0.4 * F.sin(3 * F.col("f5"))
        + 0.3 * F.col("f6") * (F.col("f7") > 0).cast("double")
    )
    target = (F.rand(seed + 10_000) < 1 / (1 + F.exp(-logit))).cast("int")
    df = df.withColumn("target", target).withColumn("split", F.lit("train"))
    lake.write(spark, df, path)


def part_a(rows: int, features: int, rounds: int, seed: int) -> None:
    # the single side collects every fit row (more than 1 GiB from about 1.5M rows)
    spark = _session(2, "6g", "spark.conf={'spark.driver.maxResultSize': '0'}")
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "features")
        started = time.perf_counter()
        generate(spark, path, rows, features, seed)
        print(f"generated {rows:,} rows x {features} features in {time.perf_counter() - started:.1f} s")
        table = assign_eval_split(lake.read(spark, path), Config().evaluation)
        names = [f"f{i}" for i in range(features)]
        # both trainers start from the same rows in memory (the single side's toPandas is not timed)
        fit = table.where(F.col("eval_split") == "fit").persist()
        holdout = table.where(F.col("eval_split") == "eval")
        fit.count()
        settings = presets.resolve(GbdtConfig(preset="fast", num_boost_round=rounds))

        started = time.perf_counter()
        out = train_barrier(spark, TrainRows(fit, None, names, []), settings, num_tasks=2)
        barrier_wall = time.perf_counter() - started
        barrier_train = max(r["seconds"] for r in out.ranks)
        barrier_first = max(r["first_round_seconds"] for r in out.ranks)
        barrier_read = max(r.get("read_seconds", float("nan")) for r in out.ranks)
        barrier_wait = max(r.get("wait_seconds", float("nan")) for r in out.ranks)

        fit_pdf = fit.select("idx", "target", *names).toPandas().sort_values("idx")
        eval_pdf = holdout.select("target", *names).toPandas()
        started = time.perf_counter()
        single = lgb.train(
            lightgbm_params(settings, 2),
            lgb.Dataset(fit_pdf[names].to_numpy(TRAIN_DTYPE), fit_pdf["target"].to_numpy(np.float64)),
            num_boost_round=rounds,
        )
        single_wall = time.perf_counter() - started

        x_eval, y_eval = eval_pdf[names].to_numpy(np.float64), eval_pdf["target"].to_numpy()
        auc_barrier = roc_auc_score(y_eval, lgb.Booster(model_str=out.model).predict(x_eval))
        auc_single = roc_auc_score(y_eval, single.predict(x_eval))
    print(f"\n(a) {len(fit_pdf):,} fit rows x {features} features, fast preset, {rounds} rounds")
    print(f"{'':34}{'barrier, 2 tasks x 1 thread':>30}{'lightgbm.train, 2 threads':>28}")
    print(f"{'wall time (s)':34}{barrier_wall:>30.1f}{single_wall:>28.1f}")
    print(f"{'  of which lightgbm.train (s)':34}{barrier_train:>30.1f}{single_wall:>28.1f}")
    print(f"{'    network + binning + round 1 (s)':34}{barrier_first:>30.1f}{'':>28}")
    print(f"{'  reading rows in the tasks (s)':34}{barrier_read:>30.1f}{'':>28}")
    print(f"{'  waiting for the peers (s)':34}{barrier_wait:>30.1f}{'':>28}")
    print(f"{'eval AUC':34}{auc_barrier:>30.5f}{auc_single:>28.5f}")
    print(f"training-only ratio barrier/single: {barrier_train / single_wall:.2f}")
    print(f"AUC difference barrier - single: {auc_barrier - auc_single:+.5f}")
    print(f"barrier/single wall ratio: {barrier_wall / single_wall:.2f}")
    spark.stop()


def part_predict(rows: int, features: int, model_file: str | None, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(model_file) if model_file else Path(tmp) / "model.txt"
        if model_file is None:
            x = rng.normal(size=(50_000, features))
            y = (x[:, 0] - x[:, 1] + np.sin(3 * x[:, 2]) + rng.normal(size=len(x)) > 0).astype(np.float64)
            params = lightgbm_params(presets.resolve(GbdtConfig(preset="fast")), 2)
            lgb.train(params, lgb.Dataset(x, y), num_boost_round=100).save_model(str(path))
        booster = lgb.Booster(model_file=str(path))
        x = rng.normal(size=(rows, booster.num_feature()))
        started = time.perf_counter()
        compiled = load_predictor(path, Path(tmp) / "compiled", booster)
        compile_s = time.perf_counter() - started
        timings = {}
        for predictor in (BoosterPredictor(booster), compiled):
            started = time.perf_counter()
            timings[predictor.kind] = (predictor.predict(x), time.perf_counter() - started)
    (p_booster, s_booster), (p_compiled, s_compiled) = timings["booster"], timings[compiled.kind]
    print(
        f"\n(predict) {rows:,} rows x {booster.num_feature()} features, {booster.num_trees()} trees, 1 thread"
    )
    print(f"Booster.predict             {rows / s_booster:>12,.0f} rows/s ({s_booster:.2f} s)")
    print(f"{compiled.kind + ' (lleaves)':28}{rows / s_compiled:>12,.0f} rows/s ({s_compiled:.2f} s)")
    gap = np.abs(p_booster - p_compiled).max()
    print(f"compile (or load) time      {compile_s:.1f} s; largest difference {gap:.2e}")
    print(f"compiled/booster speed-up: {s_booster / s_compiled:.2f}")
    kept = x[: max(1, rows // 10)]  # scoring explains only the top-N: 20 of 200 candidates
    paths = attribution.path_contributions(booster)
    started = time.perf_counter()
    paths.of(booster, kept)
    s_paths = time.perf_counter() - started
    print(
        f"path contributions of {len(kept):,} rows (the top-N's 10 %): {s_paths:.2f} s "
        f"({1e6 * s_paths / len(kept):.1f} us/row; {s_paths / len(kept) * rows:.1f} s if all rows)"
    )


@dataclass(frozen=True)
class LakeRows:
    """The ``full`` features of a lake with their eval split, model columns and settings."""

    spark: SparkSession
    table: DataFrame  # silver.features (profile full) with ``eval_split``
    names: list[str]
    categorical: list[str]
    settings: presets.TrainSettings


def lake_rows(
    lake_root: str, preset: str, rounds: int, tasks: int, part: str, params: list[str] | None = None
) -> LakeRows | None:
    """A session over ``tasks`` cores and the lake's full features; None (with a line) without them.
    ``params``: ``KEY=VALUE`` LightGBM parameters laid over the preset (``gbdt.params.KEY``)."""
    sets = [f"lake.root={lake_root}", f"gbdt.preset={preset}", "gbdt.profile=full"]
    cfg = load_config(None, sets + [f"gbdt.params.{p}" for p in params or []])
    path = features_path(cfg)
    if not lake.exists(path):
        print(f"({part}) not measured: no silver.features at {path} (run `relisten features` first)")
        return None
    spark = _session(tasks, "8g", "spark.conf={'spark.driver.maxResultSize': '0'}")  # rows come whole
    table = assign_eval_split(lake.read(spark, path, where={"profile": "full"}), cfg.evaluation)
    names, manifest_categorical = model_columns(spark, cfg, "full", table)
    settings = presets.resolve(cfg.gbdt.model_copy(update={"num_boost_round": rounds}))
    categorical = presets.categorical_columns(settings.categorical, names, manifest_categorical)
    return LakeRows(spark, table, names, categorical, settings)


def part_b(lake_root: str, tasks: int, rounds: int, preset: str, params: list[str]) -> None:
    rows = lake_rows(lake_root, preset, rounds, tasks, "b", params)
    if rows is None:
        return
    spark, names, categorical, settings = rows.spark, rows.names, rows.categorical, rows.settings
    fit = rows.table.where(F.col("eval_split") == "fit")
    n = fit.count()
    with PeakMemory() as memory:
        started = time.perf_counter()
        out = train_barrier(spark, TrainRows(fit, None, names, categorical), settings, num_tasks=tasks)
        wall = time.perf_counter() - started
    train_s = max(r["seconds"] for r in out.ranks)
    first_s = max(r["first_round_seconds"] for r in out.ranks)
    eval_pdf = rows.table.where(F.col("eval_split") == "eval").select("target", *names).toPandas()
    scores = lgb.Booster(model_str=out.model).predict(eval_pdf[names].to_numpy(np.float64), num_threads=tasks)
    auc = roc_auc_score(eval_pdf["target"].to_numpy(), scores)
    laid = f"{preset} preset" + (f" with {', '.join(params)}" if params else "")
    print(f"\n(b) {n:,} fit rows x {len(names)} features, {laid}, {rounds} rounds, {tasks} task(s)")
    print(f"seconds per 100 rounds: {100 * train_s / rounds:.1f} (lightgbm.train in the slowest task)")
    print(f"  of which until the first round ended (network, binning, round 1): {first_s:.1f} s")
    print(f"whole barrier stage: {wall:.1f} s (reading, shuffling and converting the rows included)")
    print(f"peak memory (driver + JVM + Python workers): {memory.peak / 2**30:.1f} GiB")
    print(f"eval AUC ({len(eval_pdf):,} rows): {auc:.5f}")
    print("thesis: 258 s per 100 rounds on 7.06M rows x 385 features, 4 threads, about 50 GB")
    spark.stop()


GOSS = {"data_sample_strategy": "goss", "bagging_freq": 0, "bagging_fraction": 1.0}
# what the thesis preset lays over the recorded parameters
THESIS_CHANGES = {k: v for k, v in presets.THESIS_PARAMS.items() if presets.THESIS_EXACT_PARAMS.get(k) != v}
# (name, parameters laid over the thesis_exact preset, input dtype); the first row is the reference
LEVERS: list[tuple[str, dict[str, object], type]] = [
    ("thesis_exact preset", {}, TRAIN_DTYPE),
    ("float64 input", {}, np.float64),
    ("use_quantized_grad", {"use_quantized_grad": True}, TRAIN_DTYPE),
    (
        "quantized no stochastic rounding",
        {"use_quantized_grad": True, "stochastic_rounding": False},
        TRAIN_DTYPE,
    ),
    (
        "quantized 16 bins renew leaves",
        {"use_quantized_grad": True, "num_grad_quant_bins": 16, "quant_train_renew_leaf": True},
        TRAIN_DTYPE,
    ),
    ("goss (no bagging)", GOSS, TRAIN_DTYPE),
    ("max_bin 63", {"max_bin": 63}, TRAIN_DTYPE),
    ("goss + force_col_wise = thesis", THESIS_CHANGES, TRAIN_DTYPE),
    ("force_col_wise", {"force_col_wise": True}, TRAIN_DTYPE),
    ("force_row_wise", {"force_row_wise": True}, TRAIN_DTYPE),
    ("histogram_pool_size 1024 MB", {"histogram_pool_size": 1024}, TRAIN_DTYPE),
]


def part_levers(lake_root: str, rounds: int, only: list[str] | None) -> None:
    rows = lake_rows(lake_root, "thesis_exact", rounds, 2, "levers")
    if rows is None:
        return
    names, categorical, settings = rows.names, rows.categorical, rows.settings
    frames = {
        split: rows.table.where(F.col("eval_split") == split).select("idx", "target", *names).toPandas()
        for split in ("fit", "eval")
    }
    rows.spark.stop()
    fit = frames["fit"].sort_values("idx")
    y_fit = fit["target"].to_numpy(np.float64)
    x_eval, y_eval = frames["eval"][names].to_numpy(np.float64), frames["eval"]["target"].to_numpy()
    print(f"\n(levers) {len(fit):,} fit rows x {len(names)} features, {len(y_eval):,} eval rows")
    print(f"thesis_exact preset, {rounds} rounds, lightgbm.train with 2 threads, categorical: {categorical}")
    print(f"{'lever':30}{'binning s':>11}{'train s':>10}{'s/100 rounds':>14}{'eval AUC':>10}{'dAUC':>10}")
    reference = None
    for name, extra, dtype in LEVERS:
        if only and name not in only and name != LEVERS[0][0]:
            continue
        params = {**lightgbm_params(settings, 2), **extra}
        x_fit = fit[names].to_numpy(dtype)
        started = time.perf_counter()
        data = lgb.Dataset(
            x_fit,
            y_fit,
            feature_name=names,
            categorical_feature=categorical or "auto",
            params=params,
            free_raw_data=True,
        ).construct()
        binning = time.perf_counter() - started
        started = time.perf_counter()
        try:
            booster = lgb.train(params, data, num_boost_round=rounds)
        except lgb.basic.LightGBMError as exc:  # quantized gradients: LightGBM issue 5994
            print(f"{name:30} failed: {str(exc).split(' at ')[0]}")
            continue
        train = time.perf_counter() - started
        auc = roc_auc_score(y_eval, booster.predict(x_eval, num_threads=2))
        reference = auc if reference is None else reference
        total = binning + train
        per_100 = 100 * total / rounds
        print(f"{name:30}{binning:>11.1f}{train:>10.1f}{per_100:>14.1f}{auc:>10.5f}{auc - reference:>+10.5f}")
        del data, booster, x_fit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=["a", "b", "both", "predict", "levers"], default="both")
    parser.add_argument("--model", default=None, help="(predict) a LightGBM model.txt to time")
    parser.add_argument("--rows", type=int, default=500_000, help="(a) generated rows")
    parser.add_argument("--features", type=int, default=100, help="(a) generated feature columns")
    parser.add_argument("--rounds", type=int, default=100, help="boosting rounds")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--lake", default="./lakehouse", help="(b) lake root holding full-scale features")
    parser.add_argument("--levers", default=None, help="(levers) comma-separated names to run (default all)")
    parser.add_argument("--preset", default="thesis", choices=["thesis", "thesis_exact"], help="(b) preset")
    parser.add_argument("--tasks", type=int, default=2, help="(b) barrier tasks")
    parser.add_argument(
        "--param", action="append", default=[], help="(b) KEY=VALUE LightGBM parameter over the preset"
    )
    args = parser.parse_args(argv)
    if args.part in ("a", "both"):
        part_a(args.rows, args.features, args.rounds, args.seed)
    if args.part == "predict":
        part_predict(args.rows, args.features, args.model, args.seed)
    if args.part == "levers":
        part_levers(args.lake, args.rounds, args.levers.split(",") if args.levers else None)
    if args.part in ("b", "both"):
        part_b(args.lake, args.tasks, args.rounds, args.preset, args.param)
    return 0


if __name__ == "__main__":
    sys.exit(main())
