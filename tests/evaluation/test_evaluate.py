"""``relisten evaluate``: gold.predictions -> gold.metrics, with the oracle AUC on synthetic data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pyspark.sql import functions as F
from reference_metrics import sklearn_metrics
from sklearn import metrics as skm

from relisten_spark import lake
from relisten_spark.errors import InputError
from relisten_spark.evaluation import evaluate
from relisten_spark.metrics import METRIC_NAMES
from relisten_spark.models.baseline import popularity_scores
from relisten_spark.models.feature_inputs import features_path
from relisten_spark.predictions import PREDICTION_KEYS, read_predictions, write_predictions
from relisten_spark.splits import assign_eval_split

pytestmark = pytest.mark.spark

PRED_SCHEMA = (
    "idx long, msno string, song_id string, eval_split string, split_mode string, target int, score double"
)
N_TRAIN, N_TEST = 40, 5
RNG = np.random.default_rng(11)
P_TRUE = np.round(RNG.uniform(0.05, 0.95, N_TRAIN + N_TEST), 6)
TARGET = (RNG.random(N_TRAIN + N_TEST) < P_TRUE).astype(int)
SPLIT = {i: "calib" if i < 20 else "eval" for i in range(N_TRAIN)}  # all 40 train rows are holdout here
MODELS = {  # (model, profile, split_mode): score of row i
    ("lightgbm", "full", "time"): lambda i: float(np.clip(P_TRUE[i] + 0.2 * np.sin(i), 0.01, 0.99)),
    ("popularity", "full", "time"): lambda i: round(0.3 + 0.1 * (i % 3), 2),  # heavy ties
    ("jenn", "serving", "random"): lambda i: float(np.clip(1 - P_TRUE[i], 0.01, 0.99)),
}


def _write(spark, cfg) -> None:
    for (model, profile, mode), score in MODELS.items():
        rows = [(i, f"u{i}", f"s{i}", SPLIT[i], mode, int(TARGET[i]), score(i)) for i in range(N_TRAIN)]
        rows += [(N_TRAIN + j, "u0", "s0", "test", mode, None, 0.5) for j in range(N_TEST)]
        write_predictions(spark, cfg, spark.createDataFrame(rows, PRED_SCHEMA), model, "v1", profile, "r1")


def _truth(cfg) -> None:
    raw = Path(cfg.data.raw_dir)
    raw.mkdir(parents=True)
    lines = ["split,row,p_true"]
    lines += [f"train,{i},{P_TRUE[i]}" for i in range(N_TRAIN)]
    lines += [f"test,{j},{P_TRUE[N_TRAIN + j]}" for j in range(N_TEST)]
    (raw / "truth.csv").write_text("\n".join(lines) + "\n")


def _expected() -> dict[tuple, float]:
    out = {}
    for (model, profile, mode), score in MODELS.items():
        for part in ("calib", "eval"):
            rows = [i for i in range(N_TRAIN) if SPLIT[i] == part]
            y = TARGET[rows]
            values = {
                **sklearn_metrics(y, [score(i) for i in rows]),
                "oracle_roc_auc": skm.roc_auc_score(y, P_TRUE[rows]),
            }
            out.update({(model, profile, part, metric, mode): v for metric, v in values.items()})
    return out


@pytest.mark.slow
def test_evaluate_writes_every_metric_of_every_model_and_is_idempotent(spark, tmp_lake):
    _write(spark, tmp_lake)
    _truth(tmp_lake)
    summary = evaluate.run(spark, tmp_lake)
    path = evaluate.metrics_path(tmp_lake)
    table = lake.read(spark, path).collect()
    got = {(r["model"], r["profile"], r["split"], r["metric"], r["split_mode"]): r["value"] for r in table}
    assert len(table) == len(got) == 3 * 2 * (len(METRIC_NAMES) + 1)
    assert got == pytest.approx(_expected(), abs=1e-12)
    assert {r["run_id"] for r in table} == {summary["run_id"]}
    assert (
        summary["eval"]["jenn/serving (random split)"]["roc_auc"]
        == f"{_expected()[('jenn', 'serving', 'eval', 'roc_auc', 'random')]:.4f}"
    )
    assert summary["models"] == 3
    assert summary["oracle"] is True
    page = Path(summary["report"])  # the HTML report of this run, under the lake
    assert page.is_file()
    assert page.name == f"{summary['run_id']}.html"
    assert str(page).startswith(tmp_lake.lake.root)

    again = evaluate.run(spark, tmp_lake)
    rerun = lake.read(spark, path).collect()
    assert {r["run_id"] for r in rerun} == {again["run_id"]} != {summary["run_id"]}
    assert {
        (r["model"], r["profile"], r["split"], r["metric"], r["split_mode"]): r["value"] for r in rerun
    } == got
    assert lake.version(path) == 1  # each run is one overwrite; the first stays readable in history


@pytest.mark.slow
def test_no_oracle_on_kkbox_data_and_missing_predictions(spark, tmp_lake):
    with pytest.raises(InputError, match=r"no predictions at .*gold/predictions"):
        evaluate.run(spark, tmp_lake)
    _write(spark, tmp_lake)
    kkbox = tmp_lake.model_copy(update={"data": tmp_lake.data.model_copy(update={"source": "kkbox"})})
    evaluate.run(spark, kkbox)
    metrics = {r["metric"] for r in lake.read(spark, evaluate.metrics_path(kkbox)).collect()}
    assert metrics == set(METRIC_NAMES)


FEATURE_SCHEMA = "idx long, msno string, song_id string, split string, target int, profile string"


def _features(spark, cfg) -> None:
    """silver.features keys of one profile: 100 train rows over songs of unequal popularity and
    repeat rate, then 20 test rows."""
    rng = np.random.default_rng(5)
    songs = rng.choice(8, 120, p=np.arange(8, 0, -1) / 36)
    target = (rng.random(120) < 0.2 + 0.08 * (7 - songs)).astype(int)
    rows = [
        (i, f"u{i % 7}", f"s{songs[i]}", "train" if i < 100 else "test", int(target[i]) if i < 100 else None)
        for i in range(120)
    ]
    df = spark.createDataFrame([(*r, "serving") for r in rows], FEATURE_SCHEMA)
    lake.write(spark, df, features_path(cfg), partition_by=["profile"], replace_where={"profile": "serving"})


def test_evaluate_trains_the_baseline_beside_any_model(spark, tmp_lake):
    """Only the nets trained (no train-gbdt): evaluate still compares them with the baseline."""
    _features(spark, tmp_lake)
    split = assign_eval_split(lake.read(spark, features_path(tmp_lake)), tmp_lake.evaluation)
    jenn = split.where("eval_split != 'fit'").select(
        *PREDICTION_KEYS, (F.col("idx") % 10 / 10 + 0.05).alias("score")
    )
    write_predictions(spark, tmp_lake, jenn, "jenn", "v1", "serving", "r1")

    summary = evaluate.run(spark, tmp_lake)

    assert summary["model_versions"] == {"popularity/serving": "features-v0"}
    baseline = read_predictions(spark, tmp_lake, "popularity", "serving")
    assert {(r["model_version"], r["run_id"]) for r in baseline.collect()} == {
        ("features-v0", summary["run_id"])
    }
    expected = popularity_scores(split).toPandas()
    metrics = lake.read(spark, evaluate.metrics_path(tmp_lake)).where("model = 'popularity'").toPandas()
    assert set(metrics["profile"]) == {"serving"}
    assert set(metrics["metric"]) == set(METRIC_NAMES)
    for part in ("calib", "eval"):
        rows = expected[expected["eval_split"] == part]
        got = metrics[(metrics["split"] == part)].set_index("metric")["value"]
        assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(rows["target"], rows["score"]), abs=1e-12)
        assert got["logloss"] == pytest.approx(skm.log_loss(rows["target"], rows["score"]), abs=1e-12)
