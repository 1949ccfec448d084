"""The report's building blocks: plotly figures as HTML fragments, and HTML tables.

Figures are drawn by plotly (pinned in setup.py): :func:`figure_html` writes a figure as a
``<div>`` and the script that draws it, without plotly.js; the page embeds plotly.js once
(:func:`plotly_script`), so the report is one file that opens offline. Every section of the
report (the recommendations section too) builds its figures with these functions.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
WIDTH, HEIGHT = 560, 400
TEMPLATE = "plotly_white"


def plotly_script() -> str:
    """plotly.js inline, once per page (``<script>`` in the page's head)."""
    return f'<script type="text/javascript">{get_plotlyjs()}</script>'


def figure_html(fig: go.Figure) -> str:
    """A figure as an HTML fragment that draws it with the page's plotly.js."""
    return str(fig.to_html(full_html=False, include_plotlyjs=False, config=PLOTLY_CONFIG))


def fmt(value: object, digits: int = 4) -> str:
    """A table cell: floats with ``digits`` decimals, missing values as a dash, text escaped."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else html.escape(str(value))


def note_html(text: str) -> str:
    """One explanatory paragraph of the report (class ``note``), ``text`` escaped."""
    return f'<p class="note">{html.escape(text)}</p>'


def html_table(headers: Sequence[str], rows: Sequence[Sequence[object]], caption: str) -> str:
    """A ``<table>`` with a caption, one header row and the cells formatted by :func:`fmt`."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><caption>{html.escape(caption)}</caption><tr>{head}</tr>{body}</table>"


def layout(
    fig: go.Figure, title: str, xlabel: str, ylabel: str, left: int = 60, **extra: object
) -> go.Figure:
    """``fig`` in the report's style: template, size, margins and the titles given."""
    fig.update_layout(
        title=title, xaxis_title=xlabel, yaxis_title=ylabel, template=TEMPLATE, width=WIDTH, height=HEIGHT
    )
    fig.update_layout(margin={"l": left, "r": 20, "t": 50, "b": 50}, **extra)
    return fig


def _label_margin(labels: pd.Series) -> int:
    """A left margin (px) that fits the longest of ``labels`` (bar charts' category axis)."""
    longest = int(labels.astype(str).str.len().max()) if len(labels) else 0
    return min(420, 20 + 7 * longest)


def line_figure(
    series: Mapping[str, Sequence[tuple[float, float]]],
    title: str,
    xlabel: str,
    ylabel: str,
    markers: bool = False,
    diagonal: bool = True,
) -> go.Figure:
    """One line per series over the unit square, and the diagonal (chance / perfect calibration)."""
    fig = go.Figure()
    if diagonal:
        fig.add_trace(
            go.Scatter(
                x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash", "color": "#aaa"}, showlegend=False
            )
        )
    for name, points in series.items():
        fig.add_trace(
            go.Scatter(
                x=[p[0] for p in points],
                y=[p[1] for p in points],
                mode="lines+markers" if markers else "lines",
                name=name,
            )
        )
    fig.update_xaxes(range=[0, 1])
    fig.update_yaxes(range=[0, 1])
    return layout(fig, title, xlabel, ylabel, legend={"x": 0.55, "y": 0.05})


def bar_figure(values: pd.DataFrame, label: str, value: str, title: str, xlabel: str) -> go.Figure:
    """Horizontal bars of ``values`` ``[<label>, <value>]``, the first row on top."""
    fig = go.Figure(go.Bar(x=values[value], y=values[label], orientation="h", marker={"color": "#1f77b4"}))
    fig.update_yaxes(autorange="reversed", automargin=True)
    height = max(HEIGHT, 60 + 22 * len(values))
    return layout(fig, title, xlabel, "", left=_label_margin(values[label]), width=WIDTH + 160, height=height)


def grouped_bar_figure(
    values: pd.DataFrame, label: str, value: str, group: str, title: str, xlabel: str
) -> go.Figure:
    """Horizontal bars of ``values`` ``[<label>, <value>, <group>]``, one colour per group; labels
    ordered by their largest value, largest on top."""
    order = values.groupby(label)[value].max().sort_values(ascending=False).index.tolist()
    fig = go.Figure()
    for name, part in values.groupby(group, sort=True):
        part = part.set_index(label).reindex(order)
        fig.add_trace(go.Bar(x=part[value], y=order, orientation="h", name=str(name)))
    fig.update_layout(barmode="group")
    fig.update_yaxes(autorange="reversed", automargin=True)
    height = max(HEIGHT, 60 + 14 * len(order) * values[group].nunique())
    return layout(fig, title, xlabel, "", left=_label_margin(values[label]), width=2 * WIDTH, height=height)


def interval_figure(intervals: pd.DataFrame, title: str, xlabel: str) -> go.Figure:
    """Points with error bars: ``intervals`` ``[name, value, low, high]``, one row each."""
    fig = go.Figure(
        go.Scatter(
            x=intervals["value"],
            y=intervals["name"],
            mode="markers",
            error_x={
                "type": "data",
                "symmetric": False,
                "array": intervals["high"] - intervals["value"],
                "arrayminus": intervals["value"] - intervals["low"],
            },
        )
    )
    fig.update_yaxes(autorange="reversed", automargin=True)
    height = max(260, 80 + 40 * len(intervals))
    return layout(fig, title, xlabel, "", left=_label_margin(intervals["name"]), height=height)
