"""The HTML report: thesis-style tables, ROC and calibration plots, feature importance, oracle."""

from __future__ import annotations

import re
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from relisten_spark import lake, schemas
from relisten_spark.evaluation import report
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
    page = report.render(metrics, pd.DataFrame(), pd.DataFrame(), {}, "t")
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
        lgb.Dataset(x, y, feature_name=["plays_before", "svd_dot", "noise"]),
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
    assert page.count("<svg") == 3  # ROC, calibration, feature importance
    roc_svg = page[page.index("ROC (eval)") - 400 :]
    assert roc_svg.count("<polyline") >= 3
    assert "plays_before" in page
    assert "Calibration (eval)" in page
    assert "every model and split" in page
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # self-contained


def test_write_report_without_metrics_of_the_run_fails_clearly(spark, tmp_lake) -> None:
    lake.write(
        spark,
        spark.createDataFrame(_metrics("evaluate-1"), schemas.METRICS),
        f"{tmp_lake.lake.root}/gold/metrics",
    )
    with pytest.raises(report.InputError, match="no rows of run evaluate-2"):
        report.write_report(spark, tmp_lake, "evaluate-2")
