"""The report's retriever section: the candidate generator's measures from gold.metrics.

Three parts, each from the split ``eval`` rows of one writer (a part without rows is a note
naming the command that writes them):

* full-ranking quality of the retriever (stage 1: model ``retriever``; the fine-tuned stage 2:
  ``retriever:stage2``) and the baselines ``retrieval:*`` (:mod:`relisten_spark.retrieval.quality`,
  written by ``relisten train-retriever`` / ``relisten finetune-retriever``): a table and the
  recall@K curve;
* both stages' agreement with the ranker (models ``retriever:stage1`` / ``retriever:stage2``,
  metrics ``agreement_ndcg@N``, ``ranker_top<N>_in_top<K>``; ``relisten finetune-retriever``);
* the funnel: the backtest's top-N lists with the ranker fed by each candidate source (models
  ``funnel:<surface>:<source>``; ``relisten backtest`` with ``evaluation.funnel_sources`` set).

Only a small frame reaches the driver: models x a few dozen metric rows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from relisten_spark import lake
from relisten_spark.config import Config
from relisten_spark.evaluation import plots
from relisten_spark.evaluation.backtest import FUNNEL, metrics_path
from relisten_spark.retrieval import quality
from relisten_spark.scoring import surfaces

COLUMNS = ["model", "metric", "value", "split_mode"]
QUALITY_MODELS = (
    (quality.RETRIEVER, "retriever, stage 1"),
    (quality.STAGE2, "retriever, stage 2 (fine-tuned)"),
    (quality.POPULARITY, "popularity"),
    (quality.SVD, "svd"),
    (quality.SVD_BEFORE, "svd (rows before the period)"),
    (quality.ALS, "als"),
)
QUALITY_COLUMNS = (
    ("hr@10", "HR@10"),
    ("ndcg@10", "NDCG@10"),
    *[(f"recall@{k}", f"Recall@{k}") for k in quality.KS],
    (f"event_recall@{quality.EVENT_K}", f"event recall@{quality.EVENT_K}"),
    (f"event_recall_relisten@{quality.EVENT_K}", f"event recall@{quality.EVENT_K} (re-listened)"),
)
STAGES = ((quality.STAGE1, "stage 1"), (quality.STAGE2, "stage 2 (fine-tuned)"))
AGREEMENT_NDCG = re.compile(r"agreement_ndcg@(\d+)")
AGREEMENT_TOP = re.compile(r"ranker_top(\d+)_in_top(\d+)")
SOURCES = {
    "svd": "SVD nearest songs",
    "stage1": "retriever, stage 1",
    "stage2": "retriever, stage 2 (fine-tuned)",
}
FUNNEL_COLUMNS = (
    ("hr@{n}", "HR@N"),
    ("ndcg@{n}", "NDCG@N"),
    ("target_hr@{n}", "target HR@N"),
    ("catalog_coverage", "coverage"),
    ("popularity_share", "popularity share"),
)
QUALITY_NOTE = (
    "Every model ranks every song of its catalogue for each user with eval events, from data before "
    "the eval period (no sampled negatives); relevant = the user's distinct eval songs; event recall: "
    f"the share of eval events whose song is in the user's top {quality.EVENT_K} (re-listened: events "
    "with target = 1)."
)
AGREEMENT_NOTE = (
    "On the held-out teacher users' candidate lists: agreement NDCG@N is the DCG@N of the list in the "
    "retriever's order with the ranker's scores as gains, over the ranker's own order; the other column "
    "is the share of the ranker's top N that the retriever's top K holds."
)
FUNNEL_NOTE = (
    "The backtest's top-N lists (configured levers) with the ranker fed by each candidate source as of "
    "the holdout cutoff, against the eval period (target: the plays replayed within a month)."
)
NO_QUALITY = "No full-ranking measures of the retriever in gold.metrics: run `relisten train-retriever`."
NO_STAGE2 = "No fine-tuned retriever (stage 2) measured: run `relisten finetune-retriever`."
NO_AGREEMENT = (
    "No agreement of the retriever with the ranker in gold.metrics: run `relisten finetune-retriever`."
)
NO_FUNNEL = (
    "No funnel measures in gold.metrics: run `relisten backtest` with `evaluation.funnel_sources` set."
)


def load_retriever_metrics(spark: SparkSession, cfg: Config) -> pd.DataFrame:
    """``[model, metric, value, split_mode]``: gold.metrics' split ``eval`` rows of the retrieval
    models (:data:`quality.MODELS`) and of ``funnel:*``, the latest ``run_id`` per (model, metric)
    (stage 2's quality and agreement rows come from two runs); empty without them."""
    path = metrics_path(cfg)
    if not lake.exists(path):
        return pd.DataFrame(columns=COLUMNS)
    model = F.col("model")
    rows = (
        lake.read(spark, path)
        .where(
            (F.col("split") == quality.SPLIT) & (model.isin(*quality.MODELS) | model.startswith(f"{FUNNEL}:"))
        )
        .select("run_id", *COLUMNS)
    )
    frame: pd.DataFrame = rows.toPandas()  # models x a few dozen metrics
    latest = frame.sort_values("run_id").drop_duplicates(["model", "metric"], keep="last")
    return latest[COLUMNS].sort_values(["model", "metric"]).reset_index(drop=True)


def _wide(metrics: pd.DataFrame, models: Sequence[str], names: Sequence[str]) -> pd.DataFrame:
    """One row per model of ``models`` found in ``metrics`` (in that order, indexed by model), one
    column per metric of ``names`` (NaN where absent)."""
    part = metrics[metrics["model"].isin(list(models)) & metrics["metric"].isin(list(names))]
    if part.empty:
        return pd.DataFrame(columns=list(names))
    wide = part.pivot_table(index="model", columns="metric", values="value", aggfunc="last")
    return wide.reindex(index=[m for m in models if m in wide.index], columns=list(names))


def _split_modes(metrics: pd.DataFrame, models: Sequence[str]) -> str:
    modes = metrics.loc[metrics["model"].isin(list(models)), "split_mode"]
    return ", ".join(sorted(str(m) for m in modes.unique()))


def quality_table(metrics: pd.DataFrame) -> str:
    """The full-ranking table, one row per model of :data:`QUALITY_MODELS` with rows; a note
    without any."""
    models = [m for m, _ in QUALITY_MODELS]
    wide = _wide(metrics, models, [m for m, _ in QUALITY_COLUMNS])
    if wide.empty:
        return plots.note_html(NO_QUALITY)
    labels = dict(QUALITY_MODELS)
    rows = [[labels[str(m)], *values] for m, values in zip(wide.index, wide.to_numpy().tolist(), strict=True)]
    caption = f"Retriever quality (full ranking, eval period; split mode {_split_modes(metrics, models)})"
    table = plots.html_table(["model", *[label for _, label in QUALITY_COLUMNS]], rows, caption)
    table += plots.note_html(QUALITY_NOTE)
    if quality.STAGE2 not in wide.index:
        table += plots.note_html(NO_STAGE2)
    return table


def recall_figure(metrics: pd.DataFrame) -> go.Figure | None:
    """recall@K against K (log axis), one line per model; None without recall rows."""
    wide = _wide(metrics, [m for m, _ in QUALITY_MODELS], [f"recall@{k}" for k in quality.KS])
    if wide.empty:
        return None
    labels = dict(QUALITY_MODELS)
    fig = go.Figure()
    for model, values in zip(wide.index, wide.to_numpy().tolist(), strict=True):
        fig.add_trace(go.Scatter(x=list(quality.KS), y=values, mode="lines+markers", name=labels[str(model)]))
    fig.update_xaxes(type="log", tickvals=list(quality.KS))
    return plots.layout(fig, "recall@K (full ranking)", "K", "recall@K")


def _agreement_label(metric: str) -> str:
    top = AGREEMENT_TOP.fullmatch(metric)
    if top:
        return f"ranker's top {top.group(1)} in the retriever's top {top.group(2)}"
    return metric.replace("agreement_ndcg@", "agreement NDCG@")


def agreement_table(metrics: pd.DataFrame) -> str:
    """Both stages' agreement with the ranker: a row per stage, a column per agreement metric
    found (``agreement_ndcg@N`` first); a note without any."""
    found = metrics["metric"].map(lambda m: bool(AGREEMENT_NDCG.fullmatch(m) or AGREEMENT_TOP.fullmatch(m)))
    names = sorted(
        set(metrics.loc[found, "metric"]), key=lambda m: (AGREEMENT_TOP.fullmatch(m) is not None, m)
    )
    wide = _wide(metrics, [m for m, _ in STAGES], names)
    if wide.empty:
        return plots.note_html(NO_AGREEMENT)
    labels = dict(STAGES)
    rows = [[labels[str(m)], *values] for m, values in zip(wide.index, wide.to_numpy().tolist(), strict=True)]
    caption = "Agreement with the ranker (held-out teacher users)"
    table = plots.html_table(["retriever", *[_agreement_label(m) for m in names]], rows, caption)
    return table + plots.note_html(AGREEMENT_NOTE)


def funnel_table(metrics: pd.DataFrame, tops: Mapping[str, int]) -> str:
    """The funnel: a row per (surface of ``tops``, candidate source) with ``funnel:*`` rows,
    ``tops`` giving each surface's N; a note without any."""
    rows, order = [], list(SOURCES)
    for surface, n in tops.items():
        prefix = f"{FUNNEL}:{surface}:"
        found = {str(m).removeprefix(prefix) for m in metrics["model"] if str(m).startswith(prefix)}
        sources = sorted(found, key=lambda s: (order.index(s) if s in order else len(order), s))
        names = [m.format(n=n) for m, _ in FUNNEL_COLUMNS]
        wide = _wide(metrics, [prefix + s for s in sources], names)
        for source, values in zip(sources, wide.to_numpy().tolist(), strict=True):
            rows.append([surface, SOURCES.get(source, source), n, *values])
    if not rows:
        return plots.note_html(NO_FUNNEL)
    headers = ["surface", "candidate source", "N", *[label for _, label in FUNNEL_COLUMNS]]
    table = plots.html_table(headers, rows, "The funnel: top-N lists by candidate source (backtest)")
    return table + plots.note_html(FUNNEL_NOTE)


def section_html(metrics: pd.DataFrame, tops: Mapping[str, int]) -> str:
    """The section from :func:`load_retriever_metrics`' frame; ``tops``: each surface's N."""
    parts = ["<h2>Retriever: candidate generation</h2>", quality_table(metrics)]
    figure = recall_figure(metrics)
    if figure is not None:
        parts.append('<div class="plots">' + plots.figure_html(figure) + "</div>")
    parts += [agreement_table(metrics), funnel_table(metrics, tops)]
    return "".join(parts)


def render_retriever_section(spark: SparkSession, cfg: Config) -> str:
    """The section as an HTML fragment (plotly figures without plotly.js, which the page loads
    once)."""
    tops = {name: surfaces.surface_top_n(cfg.scoring, name) for name in cfg.scoring.surfaces}
    return section_html(load_retriever_metrics(spark, cfg), tops)
