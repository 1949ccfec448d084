"""LightGBM in Spark barrier tasks, the train-gbdt stage and its evaluation, on planted-signal data.

The tests write their own small silver.features + feature_manifest (both profiles) into a
temporary lake, so they do not depend on the feature job.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T
from sklearn.metrics import roc_auc_score

from relisten_spark import lake, schemas
from relisten_spark.config import Config, GbdtConfig
from relisten_spark.errors import ConfigError, InputError, TrainingError
from relisten_spark.evaluation import evaluate
from relisten_spark.models import presets, registry
from relisten_spark.models.feature_inputs import features_path, manifest_path
from relisten_spark.models.gbdt import barrier, stage
from relisten_spark.models.gbdt.inputs import TrainRows, lightgbm_params
from relisten_spark.predictions import read_predictions
from relisten_spark.splits import assign_eval_split

pytestmark = pytest.mark.spark

N_ROWS = 4000
N_TRAIN = 3400
FULL = ["f0", "f1", "f2", "f3", "f4", "source", "city"]
SERVING = ["f0", "f1", "f2", "source"]
CATEGORICAL = {"source", "city"}


def planted(seed: int = 0) -> pd.DataFrame:
    """Rows with a known signal: f0, f1 and source code 3 drive the target; popular songs a little."""
    rng = np.random.default_rng(seed)
    n = N_ROWS
    song = np.minimum(rng.zipf(1.6, n), 300) - 1
    x = rng.normal(size=(n, 5))
    source = rng.integers(0, 8, n)
    city = rng.integers(0, 5, n)
    logit = 1.6 * x[:, 0] - 1.2 * x[:, 1] + 0.8 * x[:, 2] * (x[:, 3] > 0) + 1.0 * (source == 3)
    logit += 1.2 * (song < 3) - 0.8 * (song >= 20) - 0.3
    target = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int32")
    frame = pd.DataFrame(
        {
            "idx": np.arange(n, dtype="int64"),
            "msno": [f"u{i % 60}" for i in range(n)],
            "song_id": [f"s{k}" for k in song],
            "split": np.where(np.arange(n) < N_TRAIN, "train", "test"),
            "target": pd.array(np.where(np.arange(n) < N_TRAIN, target, 0), dtype="Int32"),
        }
    )
    frame.loc[frame["split"] == "test", "target"] = pd.NA
    for i in range(5):
        frame[f"f{i}"] = x[:, i]
    frame.loc[rng.random(n) < 0.05, "f4"] = np.nan  # missing values travel as NaN
    frame["source"] = source.astype("int32")
    frame["city"] = city.astype("int64")
    return frame


def _features_schema(columns: list[str]) -> T.StructType:
    keys = [f for f in schemas.FEATURE_KEYS.fields if f.name != "profile"]
    types = {"source": T.IntegerType(), "city": T.LongType()}
    return T.StructType(
        [
            *keys,
            *[T.StructField(c, types.get(c, T.DoubleType())) for c in columns],
            T.StructField("profile", T.StringType()),
        ]
    )


def write_features(spark, cfg: Config, frame: pd.DataFrame) -> None:
    """silver.features (both profiles, different columns) and silver.feature_manifest."""
    path = features_path(cfg)
    for profile, columns in (("full", FULL), ("serving", SERVING)):
        pdf = frame[["idx", "msno", "song_id", "split", "target", *columns]].assign(profile=profile)
        if profile == "serving":  # the table's columns are the union: serving leaves the rest null
            for c in FULL:
                if c not in columns:
                    pdf[c] = None
        df = spark.createDataFrame(
            pdf[[f.name for f in _features_schema(FULL).fields]], _features_schema(FULL)
        )
        lake.write(spark, df, path, partition_by=["profile"], replace_where={"profile": profile})
    manifest = [
        (
            c,
            "test",
            "double",
            "ROW",
            profile,
            "context",
            c in CATEGORICAL,
            8 if c in CATEGORICAL else None,
            True,
            True,
            "",
            None,
            None,
        )
        for profile, columns in (("full", FULL), ("serving", SERVING))
        for c in columns
    ]
    manifest.append(
        (
            "f4",
            "test",
            "double",
            "ROW",
            "serving",
            "context",
            False,
            None,
            False,
            True,
            "not in gbdt",
            None,
            None,
        )
    )
    lake.write(
        spark,
        spark.createDataFrame(manifest, schemas.MANIFEST),
        manifest_path(cfg),
        partition_by=["profile"],
    )


@pytest.fixture(scope="module")
def lake_cfg(spark, tmp_path_factory) -> Config:
    """A lake with the planted features, shared by the tests of this module (they only read it)."""
    from relisten_spark.config import load_config

    root = tmp_path_factory.mktemp("gbdt")
    cfg = load_config(
        None,
        [
            "spark.master=local[2]",
            "tracking.enabled=false",
            f"lake.root={root / 'lake'}",
            f"models.root={root / 'models'}",
            f"data.raw_dir={root / 'raw'}",
            "gbdt.num_boost_round=60",
        ],
    )
    write_features(spark, cfg, planted())
    return cfg


def _fit_and_eval(spark, cfg: Config):
    table = lake.read(spark, features_path(cfg), where={"profile": "full"})
    split = assign_eval_split(table, cfg.evaluation)
    return split.where(F.col("eval_split") == "fit"), split.where(F.col("eval_split") == "calib"), split


def _local(frame, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    pdf = frame.select("idx", "target", *columns).toPandas().sort_values("idx")
    return pdf[columns].to_numpy(dtype=np.float64), pdf["target"].to_numpy(dtype=np.float64)


# ---- presets --------------------------------------------------------------------------------
def test_thesis_exact_preset_is_the_thesis_record():
    s = presets.resolve(GbdtConfig(preset="thesis_exact"))
    assert s.num_boost_round == 7732
    assert s.early_stopping_rounds == 0
    assert s.categorical == "source"
    expected = {
        "learning_rate": 0.1,
        "num_leaves": 99,
        "max_depth": 10,
        "min_data_in_leaf": 1306,
        "feature_fraction": 0.6866,
        "bagging_fraction": 0.9054,
        "bagging_freq": 1,
        "lambda_l1": 6.37,
        "lambda_l2": 65200.0,
        "min_gain_to_split": 0.0,
        "min_sum_hessian_in_leaf": 0.1,
        "max_bin": 255,
        "objective": "binary",
        "metric": ["binary_logloss", "auc"],
    }
    assert {k: s.params[k] for k in expected} == expected
    assert "data_sample_strategy" not in s.params


def test_thesis_preset_is_the_record_with_goss_for_bagging():
    exact, goss = (
        presets.resolve(GbdtConfig(preset="thesis_exact")),
        presets.resolve(GbdtConfig(preset="thesis")),
    )
    changed = {k: v for k, v in goss.params.items() if exact.params.get(k) != v}
    assert changed == {
        "data_sample_strategy": "goss",
        "bagging_fraction": 1.0,
        "bagging_freq": 0,
        "force_col_wise": True,
    }
    assert set(exact.params) <= set(goss.params)
    assert (goss.num_boost_round, goss.categorical) == (exact.num_boost_round, exact.categorical)


def test_overrides_and_reserved_parameters():
    s = presets.resolve(GbdtConfig(params={"num_leaves": 7}, num_boost_round=5, categorical="none"))
    assert (s.params["num_leaves"], s.num_boost_round, s.categorical) == (7, 5, "none")
    with pytest.raises(ConfigError, match=r"gbdt\.params\.machines is set by the trainer"):
        presets.resolve(GbdtConfig(params={"machines": "a:1"}))
    with pytest.raises(ConfigError, match=r"gbdt\.params\.objective must be 'binary'"):
        presets.resolve(GbdtConfig(params={"objective": "regression"}))


# ---- barrier training -----------------------------------------------------------------------
def test_barrier_matches_single_process_lightgbm(spark, lake_cfg):
    """Acceptance: 2 barrier tasks and plain lightgbm.train (2 threads) reach AUCs within 0.005."""
    fit, _, split = _fit_and_eval(spark, lake_cfg)
    settings = presets.resolve(lake_cfg.gbdt)
    categorical = ["source", "city"]
    out = barrier.train_barrier(spark, TrainRows(fit, None, FULL, categorical), settings, num_tasks=2)
    assert [r["rank"] for r in out.ranks] == [0, 1]
    assert all(r["machines"] == 2 for r in out.ranks)
    assert sum(r["rows"] for r in out.ranks) == fit.count()
    assert out.num_trees == 60

    x_fit, y_fit = _local(fit, FULL)
    x_eval, y_eval = _local(split.where(F.col("eval_split") == "eval"), FULL)
    single = lgb.train(
        lightgbm_params(settings, 1),  # 1 thread: no OpenMP spin-waits on a busy machine
        lgb.Dataset(x_fit, y_fit, feature_name=FULL, categorical_feature=categorical),
        num_boost_round=settings.num_boost_round,
    )
    distributed = lgb.Booster(model_str=out.model)
    auc_single = roc_auc_score(y_eval, single.predict(x_eval))
    auc_distributed = roc_auc_score(y_eval, distributed.predict(x_eval))
    assert auc_distributed > 0.75
    assert abs(auc_distributed - auc_single) < 0.005


def test_route_keys_follow_sparks_own_hash(spark):
    """The driver computes Spark's hash partitioning itself (no job): it must agree with ``hash``."""
    values = [0, 1, -7, 99, 12345, 2**31 - 1, -(2**31), *range(-50, 200)]
    rows = spark.createDataFrame([(v,) for v in values], "k int").select("k", F.hash("k").alias("h"))
    assert {r["k"]: r["h"] for r in rows.collect()} == {v: barrier.spark_hash_int(v) for v in values}
    for n in (2, 3, 8):
        keys = barrier._route_keys(n)
        routed = spark.createDataFrame([(k,) for k in keys], "k int").repartition(n, "k")
        placed = routed.rdd.mapPartitionsWithIndex(lambda i, rows: [(i, r["k"]) for r in rows]).collect()
        assert sorted(placed) == list(enumerate(keys))


def test_early_stopping_sees_the_same_metric_on_every_rank(spark, lake_cfg):
    fit, calib, _ = _fit_and_eval(spark, lake_cfg)
    cfg = GbdtConfig(num_boost_round=400, early_stopping_rounds=5, params={"learning_rate": 0.5})
    out = barrier.train_barrier(spark, TrainRows(fit, calib, FULL, []), presets.resolve(cfg), num_tasks=2)
    first, second = out.ranks
    n_calib = calib.count()
    assert first["valid_rows"] == second["valid_rows"] == n_calib  # every rank holds all calib rows
    assert first["best_score"] == second["best_score"]
    assert first["best_iteration"] == second["best_iteration"] == out.best_iteration
    assert 0 < out.best_iteration < 400
    assert lgb.Booster(model_str=out.model).num_trees() == out.best_iteration


def test_an_empty_task_stays_out_of_the_network(spark, lake_cfg):
    fit, _, _ = _fit_and_eval(spark, lake_cfg)
    even = fit.where(F.col("idx") % 2 == 0)  # fit rows go to partition idx mod 2: task 1 gets none
    out = barrier.train_barrier(
        spark, TrainRows(even, None, FULL, []), presets.resolve(GbdtConfig(num_boost_round=10)), 2
    )
    assert len(out.ranks) == 1
    assert (out.ranks[0]["partition"], out.ranks[0]["machines"]) == (0, 1)
    assert out.ranks[0]["rows"] == even.count()
    assert out.num_trees == 10


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        ("raise", r"lightgbm task failed on partition 1: RuntimeError: boom on purpose"),
        ("kill", r"Python worker exited unexpectedly"),
        pytest.param(
            "corrupt",
            r"lightgbm task failed on partition 1: ValueError: .*target must be 0 or 1, found 2",
            marks=pytest.mark.slow,
        ),
    ],
    ids=["raise", "kill", "corrupt"],
)
def test_a_failing_task_fails_the_job_quickly_with_its_message(spark, lake_cfg, failure, message):
    """One rank raises, dies, or reads a corrupt row while the other waits for it in the network."""
    fit, _, _ = _fit_and_eval(spark, lake_cfg)

    def hook(partition: int) -> None:  # defined here so that Spark pickles it by value
        if partition == 1 and failure == "raise":
            raise RuntimeError("boom on purpose")
        if partition == 1 and failure == "kill":
            os._exit(3)

    if failure == "corrupt":  # one row of partition 1 (odd idx) carries an impossible label
        fit = fit.withColumn("target", F.when(F.col("idx") == 101, F.lit(2)).otherwise(F.col("target")))
    settings = presets.resolve(GbdtConfig(num_boost_round=500))
    started = time.perf_counter()
    with pytest.raises(TrainingError, match=message):
        barrier.train_barrier(
            spark, TrainRows(fit, None, FULL, []), settings, 2, network_timeout_s=60, task_hook=hook
        )
    assert time.perf_counter() - started < 60


def test_more_tasks_than_slots_is_a_config_error(spark, lake_cfg):
    fit, _, _ = _fit_and_eval(spark, lake_cfg)
    with pytest.raises(ConfigError, match=r"gbdt.num_tasks=3 exceeds the 2 task slots"):
        barrier.train_barrier(
            spark, TrainRows(fit, None, FULL, []), presets.resolve(GbdtConfig()), num_tasks=3
        )


# ---- the stage ------------------------------------------------------------------------------
@pytest.mark.slow
def test_train_gbdt_both_profiles_then_evaluate(spark, lake_cfg):
    """Acceptance: both profiles train, and on eval the model beats the popularity baseline."""
    summaries = {}
    for profile in ("full", "serving"):
        cfg = lake_cfg.model_copy(update={"gbdt": lake_cfg.gbdt.model_copy(update={"profile": profile})})
        summaries[profile] = stage.run(spark, cfg)

    models = Path(lake_cfg.models.root) / "lightgbm"
    for profile, columns, categorical in (
        ("full", FULL, ["source", "city"]),
        ("serving", SERVING, ["source"]),
    ):
        folder = registry.resolve(lake_cfg.models.root, "lightgbm", where={"profile": profile})
        assert folder.name == summaries[profile]["model_versions"]["lightgbm"]
        meta = registry.load_metadata(folder)
        assert meta["features"] == columns
        assert meta["categorical_features"] == categorical
        assert meta["training_data"]["table"] == features_path(lake_cfg)
        assert meta["training_data"]["version"] == lake.version(features_path(lake_cfg))
        assert meta["row_counts"] == {"fit": 2720, "calib": 340, "eval": 340, "test": 600}
        assert meta["parameters"]["num_boost_round"] == 60
        assert meta["training_seconds"] > 0
        assert set(meta["metrics"]) == {"calib", "eval"}
        assert set(meta["feature_importance_gain"]) == set(columns)
        booster = lgb.Booster(model_file=str(folder / "model.txt"))
        assert booster.feature_name() == columns
        importance = pd.read_csv(folder / "importance.csv")
        assert list(importance.columns) == ["feature", "gain", "split"]
        assert importance["feature"].iloc[0] == "f0"  # the strongest planted signal

        preds = read_predictions(spark, lake_cfg, "lightgbm", profile).toPandas().sort_values("idx")
        assert sorted(preds["eval_split"].unique()) == ["calib", "eval", "test"]
        assert len(preds) == 1280
        assert (preds["model_version"] == folder.name).all()
        # the stored scores are the registered model's predictions of those rows
        rows = planted().set_index("idx").loc[preds["idx"], columns].to_numpy(dtype=np.float64)
        np.testing.assert_allclose(preds["score"].to_numpy(), booster.predict(rows), rtol=1e-9)
        assert roc_auc_score(
            preds.loc[preds["eval_split"] == "eval", "target"].astype(int),
            preds.loc[preds["eval_split"] == "eval", "score"],
        ) == pytest.approx(meta["metrics"]["eval"]["roc_auc"], abs=1e-12)
    assert len([p for p in models.iterdir() if not p.name.startswith(".")]) == 2

    summary = evaluate.run(spark, lake_cfg)
    assert summary["models"] == 4
    metrics = lake.read(spark, evaluate.metrics_path(lake_cfg)).toPandas()
    eval_auc = metrics[(metrics["split"] == "eval") & (metrics["metric"] == "roc_auc")].set_index(
        ["model", "profile"]
    )["value"]
    for profile in ("full", "serving"):
        assert eval_auc[("lightgbm", profile)] > eval_auc[("popularity", profile)] + 0.1
        assert eval_auc[("popularity", profile)] > 0.5
    assert set(metrics["split_mode"]) == {"time"}
    assert len(metrics) == 4 * 2 * 7


def test_missing_inputs_are_input_errors(spark, tmp_lake):
    with pytest.raises(InputError, match=r"no features table at .*silver/features"):
        stage.run(spark, tmp_lake)
    frame = planted().head(50)
    df = spark.createDataFrame(
        frame[["idx", "msno", "song_id", "split", "target", "f0"]].assign(profile="full")
    )
    lake.write(spark, df, features_path(tmp_lake), partition_by=["profile"])
    with pytest.raises(InputError, match="no feature manifest"):
        stage.run(spark, tmp_lake)
    manifest = [("f9", "test", "double", "ROW", "full", "context", False, None, True, True, "", None, None)]
    lake.write(spark, spark.createDataFrame(manifest, schemas.MANIFEST), manifest_path(tmp_lake))
    with pytest.raises(InputError, match=r"has no column 'f9' listed in the manifest"):
        stage.run(spark, tmp_lake)


def test_worker_error_picks_the_telling_line():
    spark_failure = (
        "An error occurred while calling o224.collectToPython.\n"
        ": org.apache.spark.SparkException: Job aborted due to stage failure: Could not recover.\n"
        "org.apache.spark.api.python.PythonException: Traceback (most recent call last):\n"
        "ModuleNotFoundError: No module named 'x'\n"
        "\tat org.apache.spark.api.python.BasePythonRunner.handlePythonException(PythonRunner.scala:1)\n"
    )
    assert barrier.worker_error(RuntimeError(spark_failure)) == "ModuleNotFoundError: No module named 'x'"
    ours = spark_failure + "RuntimeError: lightgbm task failed on partition 3: ValueError: bad\n"
    assert barrier.worker_error(RuntimeError(ours)) == "lightgbm task failed on partition 3: ValueError: bad"
    assert barrier.worker_error(RuntimeError("first line\nsecond")) == "first line"
