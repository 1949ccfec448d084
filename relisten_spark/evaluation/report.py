"""The evaluation report: one self-contained HTML file under ``<lake.root>/reports/``.

Contents:

* the recommendations section (:func:`relisten_spark.evaluation.recs_section.render_recs_section`:
  backtest and beyond-accuracy measures per surface, the levers' trade-off, sample lists with
  their reasons);
* the retriever section (:func:`relisten_spark.evaluation.retriever_section.render_retriever_section`:
  full-ranking quality of both retriever stages and the baselines, their agreement with the
  ranker, the funnel of the backtest by candidate source);
* per profile and split mode of gold.metrics (the ``eval`` rows, the ones no model was fit on):
  the eval rows' count, positive rate and ``idx`` range per model and the decision threshold of
  precision / recall / F1 (``score >= metrics.THRESHOLD``); three tables laid out like the
  thesis's (Table 2 tabular models, Table 8 neural networks, Table 10 the ensemble against the
  best single model, with the gain), the thesis's ROC-AUC beside ours for reference (it was
  measured in-sample or on random splits, FEATURES.md §5); the oracle ROC-AUC where gold.metrics
  has it; bootstrap 95 % intervals of each model's AUC and of the stack's gain
  (:mod:`~relisten_spark.evaluation.uncertainty`: on a bounded sample of eval events); ROC
  curves and a calibration plot computed in Spark (:func:`~relisten_spark.metrics.roc_curve`,
  ``calibration_curve``: a hundred points per model reach the driver);
* feature importance named by the features' family labels
  (:mod:`~relisten_spark.evaluation.importance`): LightGBM's total gain, and permutation
  importance of LightGBM, the nets and the stack on a sample of eval rows;
* every metric of every split in one long table.

Plots are plotly figures (:mod:`~relisten_spark.evaluation.plots`); plotly.js is embedded once in
the page's head, so the file opens offline.
"""

from __future__ import annotations

import html
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from relisten_spark import lake
from relisten_spark.config import Config
from relisten_spark.errors import InputError
from relisten_spark.evaluation import importance, plots, uncertainty
from relisten_spark.evaluation.backtest import PREFIX as TOPN_PREFIX
from relisten_spark.evaluation.oracle import ORACLE_METRIC
from relisten_spark.evaluation.plots import fmt, html_table
from relisten_spark.evaluation.recs_section import render_recs_section
from relisten_spark.evaluation.retriever_section import render_retriever_section
from relisten_spark.metrics import THRESHOLD, calibration_curve, roc_curve
from relisten_spark.predictions import predictions_path
from relisten_spark.runtime import FELU_NET, JENN, LIGHTGBM, NET_NAMES, POPULARITY, STACK

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


# ---- tables ---------------------------------------------------------------------------------
def wide_metrics(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per (profile, split_mode, split, model), one column per metric of :data:`COLUMNS`
    (the top-N measures of the backtest, models ``topn:*``, belong to the recommendations
    section; other list metrics, the retriever's, are left out)."""
    metrics = metrics[
        metrics["metric"].isin([m for m, _ in COLUMNS]) & ~metrics["model"].str.startswith(f"{TOPN_PREFIX}:")
    ]
    wide = metrics.pivot_table(
        index=["profile", "split_mode", "split", "model"], columns="metric", values="value", aggfunc="last"
    )
    return wide.reset_index()


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
        html_table(
            headers,
            _model_rows(part, sorted(tabular, key=lambda m: -_auc(part, m)), columns),
            "Table 2 layout: tabular models",
        ),
        html_table(headers, _model_rows(part, nets, columns), "Table 8 layout: neural networks"),
    ]
    best = best_single(part)
    if STACK in models and best is not None:
        rows = _model_rows(part, [best, STACK], columns)
        gain: list[object] = ["gain (stack - best)"]
        for (metric, _), s, b in zip(columns, rows[1][1:-1], rows[0][1:-1], strict=True):
            same_rows = metric == ORACLE_METRIC  # a property of the rows, not of the models
            gain.append(s - b if isinstance(s, float) and isinstance(b, float) and not same_rows else None)
        gain.append(THESIS_ROC_AUC[STACK] - THESIS_ROC_AUC[JENN])  # the thesis's best single: JENN
        rows[0][0] = f"{best} (best single model)"
        html_parts.append(
            html_table(headers, [*rows, gain], "Table 10 layout: the ensemble against the best single model")
        )
    return "".join(html_parts)


def best_single(part: pd.DataFrame) -> str | None:
    """The single model (not the stack, not the baseline) of the best eval ROC-AUC in ``part``."""
    singles = [
        m for m in part["model"].unique() if m not in (STACK, POPULARITY) and _auc(part, m) == _auc(part, m)
    ]
    return max(sorted(singles), key=lambda m: _auc(part, m)) if singles else None


def _auc(part: pd.DataFrame, model: str) -> float:
    match = part.loc[part["model"] == model, "roc_auc"] if "roc_auc" in part else pd.Series(dtype=float)
    return float(match.iloc[0]) if len(match) and match.iloc[0] == match.iloc[0] else float("nan")


# ---- everything beyond gold.metrics ---------------------------------------------------------
@dataclass
class Extras:
    """What the report shows beside gold.metrics (each part may be empty): ROC points and
    calibration bins, the eval rows' summary (:func:`uncertainty.eval_rows`), bootstrap
    intervals per (profile, split mode), LightGBM's gain per version, permutation importance
    per profile, and the recommendations and retriever sections' HTML."""

    roc: pd.DataFrame = field(default_factory=pd.DataFrame)
    calib: pd.DataFrame = field(default_factory=pd.DataFrame)
    rows: pd.DataFrame = field(default_factory=pd.DataFrame)
    intervals: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)
    gain: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    permutation: dict[str, pd.DataFrame] = field(default_factory=dict)
    recs_html: str = ""
    retriever_html: str = ""


def load_intervals(
    spark: SparkSession, cfg: Config, wide: pd.DataFrame
) -> dict[tuple[str, str], pd.DataFrame]:
    """Bootstrap intervals (:func:`uncertainty.bootstrap_auc`) of every profile and split mode
    with eval metrics."""
    path = predictions_path(cfg)
    if not lake.exists(path):
        return {}
    preds = lake.read(spark, path).where(F.col("eval_split") == REPORT_SPLIT)
    out = {}
    evals = wide[wide["split"] == REPORT_SPLIT]
    for (profile, mode), part in evals.groupby(["profile", "split_mode"]):
        models = sorted(part["model"].unique())
        rows = preds.where((F.col("profile") == profile) & (F.col("split_mode") == mode))
        sample = uncertainty.paired_sample(rows, models)
        if len(sample):
            out[(str(profile), str(mode))] = uncertainty.bootstrap_auc(sample, models, best_single(part))
    return out


def load_permutation(spark: SparkSession, cfg: Config, profiles: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Permutation importance of each profile with a trained stack (others are skipped, logged)."""
    out = {}
    for profile in profiles:
        try:
            out[profile] = importance.permutation_importance(spark, cfg, profile)
        except InputError as exc:
            log.warning("report: no permutation importance for profile %s: %s", profile, exc)
    return out


def load_extras(spark: SparkSession, cfg: Config, metrics: pd.DataFrame, run_id: str | None) -> Extras:
    """Everything :class:`Extras` holds, from gold.predictions, the registry and the lake."""
    extras = Extras(
        gain=importance.lightgbm_gain(spark, cfg),
        recs_html=render_recs_section(spark, cfg, run_id),
        retriever_html=render_retriever_section(spark, cfg),
    )
    path = predictions_path(cfg)
    if lake.exists(path):
        extras.roc, extras.calib = load_curves(spark, cfg)
        extras.rows = uncertainty.eval_rows(lake.read(spark, path).where(F.col("eval_split") == REPORT_SPLIT))
        wide = wide_metrics(metrics)
        extras.intervals = load_intervals(spark, cfg, wide)
        extras.permutation = load_permutation(spark, cfg, sorted(wide["profile"].unique()))
    return extras


# ---- the page -------------------------------------------------------------------------------
_CSS = """
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1240px; }
table { border-collapse: collapse; margin: 12px 0 20px; font-size: 13px; }
caption { text-align: left; font-weight: bold; padding: 4px 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.plots { display: flex; flex-wrap: wrap; gap: 16px; }
.note { color: #555; font-size: 13px; }
"""


def _curve_series(
    frame: pd.DataFrame, profile: str, mode: str, x: str, y: str, order: str
) -> dict[str, list[tuple[float, float]]]:
    if frame.empty:
        return {}
    part = frame[(frame["profile"] == profile) & (frame["split_mode"] == mode)]
    out = {}
    for model in sorted(part["model"].unique()):
        rows = part[part["model"] == model].sort_values([order, y])
        out[model] = [(float(a), float(b)) for a, b in zip(rows[x], rows[y], strict=True)]
    return out


def curve_plots(extras: Extras, profile: str, mode: str) -> str:
    """The ROC and calibration figures of one profile and split mode ("" without curves)."""
    roc = extras.roc.dropna(subset=["threshold"]) if not extras.roc.empty else extras.roc
    figures = []
    roc_series = _curve_series(roc, profile, mode, "fpr", "tpr", "fpr")
    if roc_series:
        roc_series = {m: [(0.0, 0.0), *pts] for m, pts in roc_series.items()}
        title = f"ROC ({REPORT_SPLIT})"
        figures.append(plots.line_figure(roc_series, title, "false positive rate", "true positive rate"))
    cal_series = _curve_series(extras.calib, profile, mode, "mean_score", "positive_rate", "mean_score")
    if cal_series:
        title, x, y = f"Calibration ({REPORT_SPLIT})", "mean predicted probability", "observed repeat rate"
        figures.append(plots.line_figure(cal_series, title, x, y, markers=True))
    if not figures:
        return ""
    return '<div class="plots">' + "".join(plots.figure_html(f) for f in figures) + "</div>"


def eval_rows_table(rows: pd.DataFrame, profile: str, mode: str) -> str:
    """The eval rows' count, positive rate and idx range per model, and the decision threshold."""
    part = rows[(rows["profile"] == profile) & (rows["split_mode"] == mode)] if not rows.empty else rows
    threshold = (
        f'<p class="note">Precision, recall, F1 and accuracy label a row positive when its score is '
        f"&ge; {THRESHOLD:g} (the decision threshold; ROC-AUC, PR-AUC and log-loss use no threshold).</p>"
    )
    if part.empty:
        return threshold
    table = html_table(
        ["model", "eval rows", "positive rate", "first idx", "last idx"],
        [
            [r.model, int(r.rows), float(r.positive_rate), int(r.idx_min), int(r.idx_max)]
            for r in part.itertuples()
        ],
        f"{REPORT_SPLIT} rows (idx: the event's position in the log)",
    )
    return table + threshold


def intervals_html(intervals: pd.DataFrame, part: pd.DataFrame) -> str:
    """The bootstrap table and figure of one profile and split mode (``part``: its eval rows of
    :func:`wide_metrics`): point values from gold.metrics, intervals from the sample."""
    point = {m: _auc(part, m) for m in part["model"]}
    best = best_single(part)
    if best is not None and STACK in point:
        point[uncertainty.GAIN] = point[STACK] - point[best]
    shown = intervals.assign(value=intervals["name"].map(point)).dropna(subset=["value"])
    rows = [[r.name, r.value, r.low, r.high, int(r.rows)] for r in shown.itertuples()]
    caption = (
        f"ROC-AUC with bootstrap 95 % intervals ({uncertainty.REPLICATES} Poisson replicates of a sample "
        f"of at most {uncertainty.BOOTSTRAP_ROWS:,} eval events, paired across models; the gain is "
        f"against {best})"
    )
    table = html_table(["model", "ROC-AUC (all eval rows)", "2.5 %", "97.5 %", "sample rows"], rows, caption)
    aucs = shown[shown["name"] != uncertainty.GAIN]
    figure = (
        plots.interval_figure(aucs, "ROC-AUC, 95 % bootstrap intervals", "ROC-AUC") if len(aucs) else None
    )
    return table + (plots.figure_html(figure) if figure is not None else "")


def importance_html(extras: Extras) -> str:
    """LightGBM's gain and the permutation importance, named by the features' labels."""
    parts = []
    if extras.gain:
        parts.append("<h2>LightGBM feature importance (total gain)</h2>")
        for name, gain in extras.gain.items():
            top = gain.head(importance.TOP_FEATURES).assign(name=lambda d: d["label"] + ": " + d["feature"])
            families = importance.gain_by_label(gain)
            figures = [
                plots.bar_figure(families, "label", "gain", f"{name}: gain per family", "total gain"),
                plots.bar_figure(top, "name", "gain", f"{name}: top {len(top)} columns", "total gain"),
            ]
            parts.append('<div class="plots">' + "".join(plots.figure_html(f) for f in figures) + "</div>")
    for profile, frame in extras.permutation.items():
        parts.append(f"<h2>Permutation importance, profile {html.escape(profile)}</h2>")
        parts.append(
            '<p class="note">The drop of ROC-AUC when the columns of one feature family are permuted '
            f"together, on a sample of at most {importance.PERMUTATION_ROWS:,} eval rows; LightGBM, the "
            "nets and the stack on the same rows and permutation.</p>"
        )
        figure = plots.grouped_bar_figure(
            frame, "label", "drop", "model", "AUC drop per family", "ROC-AUC drop"
        )
        parts.append(plots.figure_html(figure))
    return "".join(parts)


def section_html(wide: pd.DataFrame, extras: Extras, profile: str, mode: str) -> str:
    """One profile and split mode: eval rows, thesis tables, oracle, intervals, curves."""
    label = f"profile {profile}, {mode} split" + (
        " (random: reproduces the thesis only)" if mode == "random" else ""
    )
    body = [f"<h2>{html.escape(label)}</h2>", eval_rows_table(extras.rows, profile, mode)]
    part = wide[(wide["profile"] == profile) & (wide["split_mode"] == mode) & (wide["split"] == REPORT_SPLIT)]
    if part.empty:
        body.append(f'<p class="note">no {REPORT_SPLIT} metrics</p>')
    else:
        body.append(thesis_tables(part))
    if ORACLE_METRIC in part and part[ORACLE_METRIC].notna().any():
        values = sorted({round(float(v), 4) for v in part[ORACLE_METRIC].dropna()})
        shown = fmt(values[0]) if len(values) == 1 else f"{fmt(values[0])} to {fmt(values[-1])}"
        body.append(f"<p><b>Oracle ROC-AUC</b> (true event probabilities, {REPORT_SPLIT} rows): {shown}</p>")
    if (profile, mode) in extras.intervals and not part.empty:
        body.append(intervals_html(extras.intervals[(profile, mode)], part))
    body.append(curve_plots(extras, profile, mode))
    return "".join(body)


def render(metrics: pd.DataFrame, extras: Extras, title: str, notes: Sequence[str] = ()) -> str:
    """The report HTML from already-collected (small) frames."""
    wide = wide_metrics(metrics)
    body = [f"<h1>{html.escape(title)}</h1>", *[f'<p class="note">{html.escape(n)}</p>' for n in notes]]
    body += [extras.recs_html, extras.retriever_html]
    sections = wide[["profile", "split_mode"]].drop_duplicates().sort_values(["profile", "split_mode"])
    body += [section_html(wide, extras, str(p), str(m)) for p, m in sections.itertuples(index=False)]
    body.append(importance_html(extras))
    body.append("<h2>All metrics</h2>")
    columns = _columns(wide)
    rows = wide.sort_values(["profile", "split_mode", "split", "model"])
    body.append(
        html_table(
            ["profile", "split mode", "split", "model", *[label for _, label in columns]],
            [
                [r["profile"], r["split_mode"], r["split"], r["model"], *[r[m] for m, _ in columns]]
                for _, r in rows.iterrows()
            ],
            "every model and split",
        )
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>{plots.plotly_script()}</head>"
        f"<body>{''.join(body)}</body></html>"
    )


def write_report(spark: SparkSession, cfg: Config, run_id: str | None) -> str:
    """Write the report of ``run_id``'s metrics (None: the newest of each) and return its path."""
    metrics = load_metrics(spark, cfg, run_id)
    extras = load_extras(spark, cfg, metrics, run_id)
    name = run_id or f"report-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    notes = [
        f"run {name}; generated {datetime.now(UTC).isoformat(timespec='seconds')}; data source "
        f"{cfg.data.source}; config {cfg.digest()}.",
        "Tables and plots use the eval rows: the second half of the holdout, which neither the base models "
        "nor the stack were fit on (the stack is fit on the calib half). Thesis figures were measured "
        "in-sample or on random splits and are shown for reference only.",
    ]
    page = render(metrics, extras, "relisten_spark evaluation report", notes)
    path = report_path(cfg, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    log.info("report written to %s", path)
    return str(path)
