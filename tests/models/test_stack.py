"""The stack: fit on calib rows only, reported on eval, weights in the registry."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pyspark.sql import functions as F
from sklearn.linear_model import LogisticRegression

from relisten_spark.errors import InputError
from relisten_spark.models import registry, stack
from relisten_spark.predictions import read_predictions, write_predictions
from relisten_spark.runtime import STACK_WEIGHTS_FILE

pytestmark = pytest.mark.spark

SPLITS = ["fit"] * 40 + ["calib"] * 120 + ["eval"] * 120 + ["test"] * 40
NOISE = {"lightgbm": 0.6, "jenn": 1.0, "felu_net": 2.0}


def _truth(seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=len(SPLITS))
    y = (rng.random(len(SPLITS)) < 1 / (1 + np.exp(-2 * z))).astype(int)
    return z, y


def _write_model(spark, cfg, model: str, logits: np.ndarray, y: np.ndarray, version: str = "v1") -> None:
    rows = [
        (
            i,
            f"u{i % 7}",
            f"s{i}",
            split,
            "time",
            None if split == "test" else int(y[i]),
            float(1 / (1 + np.exp(-v))),
        )
        for i, (split, v) in enumerate(zip(SPLITS, logits, strict=True))
    ]
    schema = "idx long, msno string, song_id string, eval_split string, split_mode string"
    schema += ", target int, score double"
    write_predictions(
        spark, cfg, spark.createDataFrame(rows, schema), model, version, "serving", "r-" + model
    )


def _base_logits(seed: int = 5) -> tuple[dict[str, np.ndarray], np.ndarray]:
    z, y = _truth(seed)
    rng = np.random.default_rng(seed + 1)
    return {m: 2 * z + rng.normal(scale=s, size=len(z)) for m, s in NOISE.items()}, y


def _sklearn_weights(logits: dict[str, np.ndarray], y: np.ndarray) -> np.ndarray:
    calib = np.array([s == "calib" for s in SPLITS])
    x = np.column_stack([logits[m] for m in NOISE])[calib]
    lr = LogisticRegression(C=1.0, class_weight="balanced", solver="lbfgs", max_iter=500, random_state=42)
    lr.fit(x, y[calib])
    return np.append(lr.coef_[0], lr.intercept_[0])


def test_stack_fits_on_calib_and_predicts_calib_eval_test(spark, tmp_lake) -> None:
    logits, y = _base_logits()
    for model, values in logits.items():
        _write_model(spark, tmp_lake, model, values, y)

    summary = stack.run(spark, tmp_lake)

    meta = registry.load_metadata(registry.resolve(tmp_lake.models.root, "stack"))
    got = np.array([meta["weights"][m] for m in NOISE] + [meta["intercept"]])
    np.testing.assert_allclose(got, _sklearn_weights(logits, y), rtol=1e-4, atol=1e-6)
    assert meta["base_models"] == dict.fromkeys(NOISE, "v1")
    assert meta["calib_rows"] == meta["calib_rows_used"] == 120
    folder = registry.resolve(tmp_lake.models.root, "stack")
    assert json.loads((folder / STACK_WEIGHTS_FILE).read_text())["weights"] == meta["weights"]

    preds = read_predictions(spark, tmp_lake, model="stack", profile="serving").orderBy("idx").toPandas()
    assert sorted(preds["eval_split"].unique()) == ["calib", "eval", "test"]
    idx = preds["idx"].to_numpy()
    want = got[3] + sum(got[j] * logits[m][idx] for j, m in enumerate(NOISE))
    np.testing.assert_allclose(preds["logit"], want, rtol=1e-6, atol=1e-6)
    assert summary["model_versions"]["stack"] == summary["version"]
    assert set(summary["eval_roc_auc"]) == {*NOISE, "stack"}
    assert summary["missing_models"] == []


def test_eval_rows_do_not_change_the_weights(spark, tmp_lake) -> None:
    logits, y = _base_logits()
    for model, values in logits.items():
        _write_model(spark, tmp_lake, model, values, y)
    stack.run(spark, tmp_lake)
    first = registry.load_metadata(registry.resolve(tmp_lake.models.root, "stack"))

    rng = np.random.default_rng(99)
    not_calib = np.array([s != "calib" for s in SPLITS])
    for model, values in logits.items():
        changed = np.where(not_calib, rng.normal(scale=5, size=len(values)), values)
        _write_model(spark, tmp_lake, model, changed, y, version="v2")
    stack.run(spark, tmp_lake)
    second = registry.load_metadata(registry.resolve(tmp_lake.models.root, "stack"))

    assert second["version"] != first["version"]
    assert second["base_models"] == dict.fromkeys(NOISE, "v2")
    assert second["weights"] == pytest.approx(first["weights"], rel=1e-9)
    assert second["intercept"] == pytest.approx(first["intercept"], rel=1e-9)


def test_stack_uses_the_models_it_finds_and_caps_the_calib_sample(spark, tmp_lake) -> None:
    logits, y = _base_logits()
    for model in ("lightgbm", "jenn"):
        _write_model(spark, tmp_lake, model, logits[model], y)
    cfg = tmp_lake.model_copy(update={"stack": tmp_lake.stack.model_copy(update={"max_calib_rows": 50})})

    summary = stack.run(spark, cfg)

    assert summary["missing_models"] == ["felu_net"]
    meta = registry.load_metadata(registry.resolve(cfg.models.root, "stack"))
    assert set(meta["weights"]) == {"lightgbm", "jenn"}
    assert meta["calib_rows"] == 120
    assert 0 < meta["calib_rows_used"] <= 50


def test_stack_without_predictions_names_the_profile(spark, tmp_lake) -> None:
    logits, y = _base_logits()
    _write_model(spark, tmp_lake, "popularity", logits["jenn"], y)
    with pytest.raises(InputError, match="profile 'serving'"):
        stack.run(spark, tmp_lake)


def test_base_frame_keeps_rows_every_model_predicted(spark) -> None:
    preds = spark.createDataFrame(
        [("a", 1, 0.5), ("a", 2, 0.1), ("b", 2, -0.3), ("b", 3, 0.9)],
        "model string, idx long, logit double",
    ).select(
        "model",
        "idx",
        F.lit("u").alias("msno"),
        F.lit("s").alias("song_id"),
        F.lit("eval").alias("eval_split"),
        F.lit("time").alias("split_mode"),
        F.lit(1).alias("target"),
        "logit",
    )
    rows = stack.base_frame(preds, ["a", "b"]).select("idx", "logit_a", "logit_b").collect()
    assert [tuple(r) for r in rows] == [(2, 0.1, -0.3)]
