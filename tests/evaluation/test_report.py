"""The HTML report: thesis-style tables, eval rows and threshold, bootstrap intervals, plotly
figures (plotly.js once, offline), feature importance by family label, oracle."""

from __future__ import annotations

import re
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs
from stand_in_models import register_stack

from relisten_spark import lake, schemas
from relisten_spark.evaluation import importance, report, uncertainty
from relisten_spark.models import registry
from relisten_spark.predictions import write_predictions

pytestmark = pytest.mark.spark

PRED_SCHEMA = (
    "idx long, msno string, song_id string, eval_split string, split_mode string, target int, score double"
)
AUC = {"popularity": 0.61, "lightgbm": 0.78, "jenn": 0.80, "felu_net": 0.76, "stack": 0.815}


def _metrics(run_id: str) -> list[tuple]:
    rows = []
    for model, auc in AUC.items():
        for split in ("calib", "eval"):
            for metric, value in (("roc_auc", auc), ("pr_auc", auc - 0.05), ("logloss", 0.5), ("f1", 0.7)):
                rows.append((run_id, model, "serving", split, metric, value, "time"))
            rows.append((run_id, model, "serving", split, "oracle_roc_auc", 0.8642, "time"))
    return rows


def test_render_lays_out_tables_2_8_and_10() -> None:
    metrics = pd.DataFrame(_metrics("r1"), columns=schemas.METRICS.fieldNames())
    page = report.render(metrics, report.Extras(), "t")
    tables = re.findall(r"<table>(.*?)</table>", page)
    assert "Table 2 layout" in tables[0]
    assert re.findall(r"<tr><td>(\w+)</td>", tables[0]) == ["lightgbm", "popularity"]
    assert re.findall(r"<tr><td>(\w+)</td>", tables[1]) == ["jenn", "felu_net"]
    table10 = tables[2]
    assert "jenn (best single model)" in table10
    assert "<td>gain (stack - best)</td><td>0.0150</td>" in table10
    assert "<b>Oracle ROC-AUC</b> (true event probabilities, eval rows): 0.8642" in page
    assert "0.8449" in table10  # the thesis's ensemble figure, for reference


def test_write_report_reads_the_lake_and_embeds_plots(spark, tmp_lake) -> None:
    cfg = tmp_lake
    lake.write(
        spark, spark.createDataFrame(_metrics("evaluate-1"), schemas.METRICS), f"{cfg.lake.root}/gold/metrics"
    )
    rng = np.random.default_rng(0)
    n = 300
    x = rng.normal(size=(n, 3))
    y = (x[:, 0] + rng.normal(size=n) > 0).astype(int)
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 4},
        lgb.Dataset(x, y, feature_name=["msno_artist_name_prob", "song_embeddings_dot", "noise"]),
        10,
    )
    version = registry.save_model(
        Path(cfg.models.root),
        "lightgbm",
        lambda f: booster.save_model(str(f / "model.txt")),
        {"features": []},
    )
    for model, noise in (("lightgbm", 0.5), ("jenn", 1.0), ("stack", 0.4)):
        score = 1 / (1 + np.exp(-(x[:, 0] + rng.normal(scale=noise, size=n))))
        rows = [(i, "u", f"s{i}", "eval", "time", int(y[i]), float(score[i])) for i in range(n)]
        preds = spark.createDataFrame(rows, PRED_SCHEMA)
        write_predictions(spark, cfg, preds, model, version if model == "lightgbm" else "v", "serving", "r")

    path = report.write_report(spark, cfg, "evaluate-1")

    assert path == str(Path(cfg.lake.root) / "reports" / "evaluate-1.html")
    page = Path(path).read_text()
    # ROC, calibration, AUC intervals, LightGBM gain per family and per column
    assert page.count('class="plotly-graph-div"') == 5
    assert page.count(get_plotlyjs()) == 1  # plotly.js embedded once: the file opens offline
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=", page)
    assert '"name":"lightgbm"' in page  # the ROC figure's traces
    assert "Calibration (eval)" in page
    assert "you often play this artist: msno_artist_name_prob" in page  # columns named by their label
    assert "listeners like you play it" in page
    assert "every model and split" in page
    # the eval rows: count, positive rate, idx range per model; the decision threshold
    rows = re.search(r"<caption>eval rows.*?</table>", page).group(0)
    assert f"<tr><td>lightgbm</td><td>300</td><td>{y.mean():.4f}</td><td>0</td><td>299</td></tr>" in rows
    assert "score is &ge; 0.5 (the decision threshold" in page
    # bootstrap intervals around gold.metrics' AUC, and the stack's gain over the best single
    intervals = re.search(r"<caption>ROC-AUC with bootstrap.*?</table>", page).group(0)
    assert "<tr><td>jenn</td><td>0.8000</td>" in intervals
    assert "<td>gain (stack - best single)</td><td>0.0150</td>" in intervals
    assert "the gain is against jenn" in intervals


def test_write_report_without_metrics_of_the_run_fails_clearly(spark, tmp_lake) -> None:
    lake.write(
        spark,
        spark.createDataFrame(_metrics("evaluate-1"), schemas.METRICS),
        f"{tmp_lake.lake.root}/gold/metrics",
    )
    with pytest.raises(report.InputError, match="no rows of run evaluate-2"):
        report.write_report(spark, tmp_lake, "evaluate-2")


def test_weighted_auc_matches_sklearn_and_counts_weights_as_repeats() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    score = np.round(rng.random(400), 2)  # ties
    target = (rng.random(400) < score).astype(int)
    weights = rng.poisson(1.0, size=(3, 400)).astype(float)
    got = uncertainty.weighted_auc(score, target, np.vstack([np.ones(400), weights]))
    assert got[0] == pytest.approx(roc_auc_score(target, score), abs=1e-12)
    for w, auc in zip(weights, got[1:], strict=True):
        repeat = w.astype(int)
        want = roc_auc_score(np.repeat(target, repeat), np.repeat(score, repeat))
        assert auc == pytest.approx(want, abs=1e-12)


def test_bootstrap_intervals_are_paired_and_cover_the_sample_auc() -> None:
    rng = np.random.default_rng(2)
    n = 3000
    target = rng.integers(0, 2, n)
    signal = target + rng.normal(size=n)
    sample = pd.DataFrame(
        {
            "target": target,
            "lightgbm": signal + rng.normal(scale=1.0, size=n),
            "stack": signal + rng.normal(scale=0.2, size=n),
            "jenn": np.where(np.arange(n) < 2000, signal + rng.normal(scale=0.6, size=n), np.nan),
        }
    )
    got = uncertainty.bootstrap_auc(sample, ["jenn", "lightgbm", "stack"], "jenn").set_index("name")
    assert got.loc["jenn", "rows"] == 2000  # a model's rows: those it scored
    ones = np.ones((1, n))
    for model in ("lightgbm", "stack"):
        auc = uncertainty.weighted_auc(sample[model].to_numpy(), target, ones)[0]
        assert got.loc[model, "low"] < auc < got.loc[model, "high"]
    assert got.loc["stack", "high"] - got.loc["stack", "low"] < 0.05
    gain = got.loc[uncertainty.GAIN]
    assert gain["rows"] == 2000
    assert 0 < gain["low"] < gain["high"]  # the stack is clearly better: the paired interval excludes 0


def test_permutation_importance_finds_the_family_that_drives_the_target(spark, tmp_lake) -> None:
    """A stack over a LightGBM that reads an artist-affinity column (the signal) and a recent
    popularity column (noise): permuting the signal's family costs AUC, the noise's does not."""
    rng = np.random.default_rng(3)
    n = 1500
    signal, noise = rng.normal(size=n), rng.normal(size=n)
    target = (signal + rng.normal(scale=0.5, size=n) > 0).astype(int)
    names = ["msno_artist_name_prob", "song_10_before_cnt"]
    rows = [(i, f"u{i % 7}", f"s{i}", "train", int(target[i]), "serving", float(signal[i]), float(noise[i]))
            for i in range(n)]  # fmt: skip
    features = spark.createDataFrame(rows, [*schemas.FEATURE_KEYS.fieldNames(), *names])
    lake.write(spark, features, f"{tmp_lake.lake.root}/silver/features", partition_by=["profile"])
    x = np.column_stack([signal, noise])
    params = {"objective": "binary", "verbose": -1, "num_leaves": 7, "seed": 0}
    booster = lgb.train(params, lgb.Dataset(x, target, feature_name=names), 20)
    register_stack(tmp_lake.models.root, booster, names)

    got = importance.permutation_importance(spark, tmp_lake, "serving").set_index(["model", "label"])["drop"]

    assert sorted(got.index.get_level_values("model").unique()) == ["lightgbm", "stack"]
    for model in ("lightgbm", "stack"):
        assert got[(model, "you often play this artist")] > 0.2
        assert abs(got[(model, "popular in the last days")]) < 0.05
