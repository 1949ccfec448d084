"""The evaluation report: one self-contained HTML file under ``<lake.root>/reports/``.

Contents, per profile and split mode of gold.metrics (the ``eval`` rows, the ones no model
was fit on):

* three tables laid out like the thesis's: Table 2 (tabular models), Table 8 (neural networks)
  and Table 10 (the ensemble against the best single model, with the gain), each with the
  thesis's ROC-AUC beside ours for reference (the thesis measured in-sample or on random
  splits, FEATURES.md §5, so its numbers are not comparable);
* the oracle ROC-AUC (the true event probabilities of synthetic data, on the rows each model
  predicted) where gold.metrics has it, as a column and once per section;
* ROC curves and a calibration plot of every model, computed in Spark from gold.predictions
  (:func:`~relisten_spark.metrics.roc_curve`, ``calibration_curve``): only a
  hundred points per model reach the driver;
* LightGBM's feature importance (total gain, top 25) of each LightGBM version in the
  predictions, read from the registry;
* every metric of every split in one long table.

Plots are inline SVG written by hand (no plotting library, no external file).
"""

from __future__ import annotations

import html
import logging
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from relisten_spark import lake
from relisten_spark.config import Config
from relisten_spark.errors import InputError
from relisten_spark.evaluation.oracle import ORACLE_METRIC
from relisten_spark.metrics import calibration_curve, roc_curve
from relisten_spark.models import registry
from relisten_spark.predictions import predictions_path
from relisten_spark.runtime import FELU_NET, JENN, LIGHTGBM, LIGHTGBM_MODEL_FILE, NET_NAMES, POPULARITY, STACK

log = logging.getLogger(__name__)

COLUMNS = [
    ("roc_auc", "ROC-AUC"),
    ("pr_auc", "PR-AUC"),
    ("logloss", "log-loss"),
    ("precision", "Precision"),
    ("recall", "Recall"),
    ("f1", "F1"),
    ("accuracy", "Accuracy"),
    (ORACLE_METRIC, "oracle ROC-AUC"),
]
# thesis Tables 2, 8 and 10 (ROC-AUC), for reference only
THESIS_ROC_AUC = {LIGHTGBM: 0.824, JENN: 0.839, FELU_NET: 0.825, STACK: 0.8449}
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
TOP_FEATURES = 25
REPORT_SPLIT = "eval"


def report_path(cfg: Config, run_id: str) -> Path:
    return Path(cfg.lake.root) / "reports" / f"{run_id}.html"


# ---- data -----------------------------------------------------------------------------------
def load_metrics(spark: SparkSession, cfg: Config, run_id: str | None) -> pd.DataFrame:
    """gold.metrics rows of ``run_id`` (None: the newest row per model, profile, split, metric)."""
    path = lake.table_path(cfg.lake.root, "gold", "metrics")
    if not lake.exists(path):
        raise InputError(f"no metrics table at {path}: run `relisten evaluate` first")
    df = lake.read(spark, path)
    if run_id is not None:
        df = df.where(F.col("run_id") == run_id)
    metrics: pd.DataFrame = df.toPandas()  # a few rows per model: bounded by models x splits x metrics
    if metrics.empty:
        raise InputError(f"gold.metrics has no rows{f' of run {run_id}' if run_id else ''}")
    keys = ["model", "profile", "split_mode", "split", "metric"]
    return metrics.sort_values("run_id").drop_duplicates(keys, keep="last").reset_index(drop=True)


def load_curves(spark: SparkSession, cfg: Config) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ROC points, calibration bins) of the eval rows of gold.predictions, per profile,
    split mode and model; empty frames when there are no predictions."""
    path = predictions_path(cfg)
    if not lake.exists(path):
        return pd.DataFrame(), pd.DataFrame()
    preds = lake.read(spark, path).where(F.col("eval_split") == REPORT_SPLIT)
    groups = ["profile", "split_mode", "model"]
    roc = roc_curve(preds, groups, points=100).toPandas()
    calib = calibration_curve(preds, groups, bins=10).toPandas()
    return roc, calib


def load_importance(spark: SparkSession, cfg: Config) -> dict[str, pd.DataFrame]:
    """{"<profile> (version)": [feature, gain]} for each LightGBM version in gold.predictions."""
    path = predictions_path(cfg)
    if not lake.exists(path):
        return {}
    versions = (
        lake.read(spark, path, where={"model": LIGHTGBM})
        .select("profile", "model_version")
        .distinct()
        .collect()
    )
    out: dict[str, pd.DataFrame] = {}
    for row in sorted(versions, key=lambda r: (r["profile"], r["model_version"])):
        try:
            folder = registry.resolve(cfg.models.root, LIGHTGBM, row["model_version"])
        except InputError as exc:
            log.warning("report: no feature importance for lightgbm %s: %s", row["model_version"], exc)
            continue
        import lightgbm

        booster = lightgbm.Booster(model_file=str(folder / LIGHTGBM_MODEL_FILE))
        gain = pd.DataFrame(
            {"feature": booster.feature_name(), "gain": booster.feature_importance(importance_type="gain")}
        )
        top = gain.sort_values(["gain", "feature"], ascending=[False, True]).head(TOP_FEATURES)
        out[f"{row['profile']} (lightgbm {row['model_version']})"] = top.reset_index(drop=True)
    return out


# ---- tables ---------------------------------------------------------------------------------
def _fmt(value: object, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else html.escape(str(value))


def wide_metrics(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per (profile, split_mode, split, model), one column per metric."""
    wide = metrics.pivot_table(
        index=["profile", "split_mode", "split", "model"], columns="metric", values="value", aggfunc="last"
    )
    return wide.reset_index()


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], caption: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><caption>{html.escape(caption)}</caption><tr>{head}</tr>{body}</table>"


def _model_rows(
    part: pd.DataFrame, models: Sequence[str], columns: Sequence[tuple[str, str]]
) -> list[list[object]]:
    rows = []
    for model in models:
        match = part[part["model"] == model]
        if match.empty:
            continue
        rec = match.iloc[0]
        rows.append([model, *[rec.get(m) for m, _ in columns], THESIS_ROC_AUC.get(model)])
    return rows


def _columns(part: pd.DataFrame) -> list[tuple[str, str]]:
    """The metric columns of :data:`COLUMNS` that ``part`` has values of."""
    return [(m, label) for m, label in COLUMNS if m in part and part[m].notna().any()]


def thesis_tables(part: pd.DataFrame) -> str:
    """Tables 2, 8 and 10 of one profile / split mode from its eval rows (``wide_metrics``)."""
    columns = _columns(part)
    headers = ["model", *[label for _, label in columns], "thesis ROC-AUC"]
    models = sorted(part["model"].unique())
    tabular = [m for m in models if m not in NET_NAMES and m != STACK]
    nets = [m for m in NET_NAMES if m in models]
    html_parts = [
        _table(
            headers,
            _model_rows(part, sorted(tabular, key=lambda m: -_auc(part, m)), columns),
            "Table 2 layout: tabular models",
        ),
        _table(headers, _model_rows(part, nets, columns), "Table 8 layout: neural networks"),
    ]
    singles = [m for m in models if m not in (STACK, POPULARITY) and _auc(part, m) == _auc(part, m)]
    if STACK in models and singles:
        best = max(singles, key=lambda m: _auc(part, m))
        rows = _model_rows(part, [best, STACK], columns)
        gain: list[object] = ["gain (stack - best)"]
        for (metric, _), s, b in zip(columns, rows[1][1:-1], rows[0][1:-1], strict=True):
            same_rows = metric == ORACLE_METRIC  # a property of the rows, not of the models
            gain.append(s - b if isinstance(s, float) and isinstance(b, float) and not same_rows else None)
        gain.append(THESIS_ROC_AUC[STACK] - THESIS_ROC_AUC[JENN])  # the thesis's best single: JENN
        rows[0][0] = f"{best} (best single model)"
        html_parts.append(
            _table(headers, [*rows, gain], "Table 10 layout: the ensemble against the best single model")
        )
    return "".join(html_parts)


def _auc(part: pd.DataFrame, model: str) -> float:
    match = part.loc[part["model"] == model, "roc_auc"] if "roc_auc" in part else pd.Series(dtype=float)
    return float(match.iloc[0]) if len(match) and match.iloc[0] == match.iloc[0] else float("nan")


# ---- plots ----------------------------------------------------------------------------------
_W, _H, _M = 420, 360, 48


def _svg(width: float, height: float, parts: Sequence[str]) -> str:
    head = f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">'
    return head + "".join(parts) + "</svg>"


def _xy(x: float, y: float) -> tuple[float, float]:
    return _M + x * (_W - 2 * _M), _H - _M - y * (_H - 2 * _M)


def _axes(title: str, xlabel: str, ylabel: str) -> list[str]:
    x0, y0 = _xy(0, 0)
    x1, y1 = _xy(1, 1)
    parts = [
        f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="none" stroke="#444"/>',
        f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="#aaa" stroke-dasharray="4 4"/>',
        f'<text x="{_W / 2}" y="18" text-anchor="middle" font-weight="bold">{html.escape(title)}</text>',
        f'<text x="{_W / 2}" y="{_H - 8}" text-anchor="middle">{html.escape(xlabel)}</text>',
        f'<text x="14" y="{_H / 2}" text-anchor="middle" transform="rotate(-90 14 {_H / 2})">'
        f"{html.escape(ylabel)}</text>",
    ]
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        tx, ty = _xy(t, 0)
        parts.append(f'<text x="{tx}" y="{ty + 14}" text-anchor="middle" font-size="10">{t:g}</text>')
        lx, ly = _xy(0, t)
        parts.append(f'<text x="{lx - 4}" y="{ly + 3}" text-anchor="end" font-size="10">{t:g}</text>')
    return parts


def _legend(names: Sequence[str]) -> list[str]:
    parts = []
    for i, name in enumerate(names):
        x, y = _xy(0.62, 0.05 + 0.07 * (len(names) - 1 - i))
        color = PALETTE[i % len(PALETTE)]
        parts.append(f'<rect x="{x}" y="{y - 8}" width="12" height="3" fill="{color}"/>')
        parts.append(f'<text x="{x + 16}" y="{y - 3}" font-size="11">{html.escape(name)}</text>')
    return parts


def svg_lines(
    series: Mapping[str, Sequence[tuple[float, float]]], title: str, xlabel: str, ylabel: str, markers: bool
) -> str:
    """An inline SVG of one polyline per series over the unit square (plus the diagonal)."""
    parts = _axes(title, xlabel, ylabel)
    for i, (name, points) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        coords = " ".join("{:.1f},{:.1f}".format(*_xy(x, y)) for x, y in points)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="1.8">'
                     f"<title>{html.escape(name)}</title></polyline>")  # fmt: skip
        if markers:
            centres = [_xy(x, y) for x, y in points]
            parts += [f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2.5" fill="{color}"/>' for cx, cy in centres]
    parts += _legend(list(series))
    return _svg(_W, _H, parts)


def svg_bars(values: pd.DataFrame, title: str) -> str:
    """Horizontal bars of ``values`` ``[feature, gain]`` (largest first)."""
    row_h, label_w, width = 16, 230, 640
    height = 30 + row_h * len(values)
    top = float(values["gain"].max()) if len(values) else 1.0
    parts = [
        f'<text x="{width / 2}" y="16" text-anchor="middle" font-weight="bold">{html.escape(title)}</text>'
    ]
    for i, (feature, gain) in enumerate(zip(values["feature"], values["gain"], strict=True)):
        y = 26 + i * row_h
        w = 0 if top <= 0 else (width - label_w - 70) * float(gain) / top
        label = html.escape(feature)
        parts.append(f'<text x="{label_w - 6}" y="{y + 11}" text-anchor="end" font-size="11">{label}</text>')
        parts.append(
            f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{row_h - 4}" fill="{PALETTE[0]}"/>'
        )
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 11}" font-size="10">{float(gain):.4g}</text>')
    return _svg(width, height, parts)


def _curve_series(
    frame: pd.DataFrame, profile: str, mode: str, x: str, y: str, order: str
) -> dict[str, list]:
    if frame.empty:
        return {}
    part = frame[(frame["profile"] == profile) & (frame["split_mode"] == mode)]
    out = {}
    for model in sorted(part["model"].unique()):
        rows = part[part["model"] == model].sort_values([order, y])
        out[model] = [(float(a), float(b)) for a, b in zip(rows[x], rows[y], strict=True)]
    return out


# ---- the page -------------------------------------------------------------------------------
_CSS = """
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1200px; }
table { border-collapse: collapse; margin: 12px 0 20px; font-size: 13px; }
caption { text-align: left; font-weight: bold; padding: 4px 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.plots { display: flex; flex-wrap: wrap; gap: 16px; }
.note { color: #555; font-size: 13px; }
"""


def render(
    metrics: pd.DataFrame,
    roc: pd.DataFrame,
    calib: pd.DataFrame,
    importance: Mapping[str, pd.DataFrame],
    title: str,
    notes: Sequence[str] = (),
) -> str:
    """The report HTML from already-collected (small) frames."""
    wide = wide_metrics(metrics)
    body = [f"<h1>{html.escape(title)}</h1>", *[f'<p class="note">{html.escape(n)}</p>' for n in notes]]
    sections = wide[["profile", "split_mode"]].drop_duplicates().sort_values(["profile", "split_mode"])
    for profile, mode in sections.itertuples(index=False):
        label = f"profile {profile}, {mode} split" + (
            " (random: reproduces the thesis only)" if mode == "random" else ""
        )
        body.append(f"<h2>{html.escape(label)}</h2>")
        part = wide[
            (wide["profile"] == profile) & (wide["split_mode"] == mode) & (wide["split"] == REPORT_SPLIT)
        ]
        if part.empty:
            body.append(f'<p class="note">no {REPORT_SPLIT} metrics</p>')
        else:
            body.append(thesis_tables(part))
        if ORACLE_METRIC in part and part[ORACLE_METRIC].notna().any():
            values = sorted({round(float(v), 4) for v in part[ORACLE_METRIC].dropna()})
            shown = _fmt(values[0]) if len(values) == 1 else f"{_fmt(values[0])} to {_fmt(values[-1])}"
            body.append(
                f"<p><b>Oracle ROC-AUC</b> (true event probabilities, {REPORT_SPLIT} rows): {shown}</p>"
            )
        plots = []
        roc_series = _curve_series(
            roc.dropna(subset=["threshold"]) if not roc.empty else roc, profile, mode, "fpr", "tpr", "fpr"
        )
        if roc_series:
            roc_series = {m: [(0.0, 0.0), *pts] for m, pts in roc_series.items()}
            plots.append(
                svg_lines(
                    roc_series, f"ROC ({REPORT_SPLIT})", "false positive rate", "true positive rate", False
                )
            )
        cal_series = _curve_series(calib, profile, mode, "mean_score", "positive_rate", "mean_score")
        if cal_series:
            plots.append(svg_lines(cal_series, f"Calibration ({REPORT_SPLIT})", "mean predicted probability",
                                   "observed repeat rate", True))  # fmt: skip
        if plots:
            body.append(f'<div class="plots">{"".join(plots)}</div>')
    if importance:
        body.append("<h2>LightGBM feature importance (total gain)</h2>")
        body += [svg_bars(values, name) for name, values in importance.items()]
    body.append("<h2>All metrics</h2>")
    columns = _columns(wide)
    metric_names = [m for m, _ in columns]
    rows = wide.sort_values(["profile", "split_mode", "split", "model"])
    body.append(
        _table(
            [
                "profile",
                "split mode",
                "split",
                "model",
                *[label for _, label in columns],
            ],
            [
                [r["profile"], r["split_mode"], r["split"], r["model"], *[r[m] for m in metric_names]]
                for _, r in rows.iterrows()
            ],
            "every model and split",
        )
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>{''.join(body)}</body></html>"
    )


def write_report(spark: SparkSession, cfg: Config, run_id: str | None) -> str:
    """Write the report of ``run_id``'s metrics (None: the newest of each) and return its path."""
    metrics = load_metrics(spark, cfg, run_id)
    roc, calib = load_curves(spark, cfg)
    importance = load_importance(spark, cfg)
    name = run_id or f"report-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    notes = [
        f"run {name}; generated {datetime.now(UTC).isoformat(timespec='seconds')}; data source "
        f"{cfg.data.source}; config {cfg.digest()}.",
        "Tables and plots use the eval rows: the second half of the holdout, which neither the base models "
        "nor the stack were fit on (the stack is fit on the calib half). Thesis figures were measured "
        "in-sample or on random splits and are shown for reference only.",
    ]
    page = render(metrics, roc, calib, importance, "relisten_spark evaluation report", notes)
    path = report_path(cfg, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    log.info("report written to %s", path)
    return str(path)
