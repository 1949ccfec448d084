"""The report's retriever section: full-ranking quality and recall@K, agreement with the ranker,
the funnel by candidate source, a note for each missing part; read from gold.metrics."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pandas as pd
import pytest

from relisten_spark import lake, schemas
from relisten_spark.evaluation import report
from relisten_spark.evaluation import retriever_section as section

TOPS = {"story": 20, "shopping": 30}


def _quality(model: str, base: float, relisten: bool = True) -> list[tuple[str, str, float, str]]:
    """``[model, metric, value, split_mode]`` of one model's full-ranking rows."""
    rows = [
        (model, "hr@10", base, "time"),
        (model, "ndcg@10", base / 2, "time"),
        (model, "mrr", 0.05, "time"),
    ]
    rows += [(model, f"recall@{k}", base * k / 200, "time") for k in (10, 20, 100, 200)]
    rows.append((model, "event_recall@200", base + 0.01, "time"))
    if relisten:
        rows.append((model, "event_recall_relisten@200", base + 0.02, "time"))
    return rows


def _frame(rows: list[tuple[str, str, float, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=section.COLUMNS)


def _metrics() -> pd.DataFrame:
    rows = [
        *_quality("retriever", 0.40),
        *_quality("retriever:stage2", 0.50),
        *_quality("retrieval:popularity", 0.20),
        *_quality("retrieval:als", 0.30),
        ("retriever:stage1", "agreement_ndcg@20", 0.61, "time"),
        ("retriever:stage1", "ranker_top20_in_top50", 0.71, "time"),
        ("retriever:stage2", "agreement_ndcg@20", 0.81, "time"),
        ("retriever:stage2", "ranker_top20_in_top50", 0.91, "time"),
        ("topn:story", "hr@20", 0.99, "time"),  # the recommendations section's, not shown here
    ]
    for source, hr in (("stage2", 0.33), ("svd", 0.11), ("stage1", 0.22)):
        model = f"funnel:story:{source}"
        rows += [
            (model, "hr@10", 0.01, "time"),
            (model, "hr@20", hr, "time"),
            (model, "ndcg@20", hr / 10, "time"),
            (model, "target_hr@20", hr / 2, "time"),
            (model, "catalog_coverage", 0.05, "time"),
            (model, "popularity_share", 0.6, "time"),
        ]
    return _frame(rows)


def _rows(table: str) -> list[list[str]]:
    """The cells of each body row of an HTML table."""
    return [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr><td>.*?</tr>", table)]


def test_quality_table_has_a_row_per_model_in_order_and_the_split_mode() -> None:
    table = section.quality_table(_metrics())
    assert "split mode time" in table
    assert _rows(table) == [
        [
            "retriever, stage 1",
            "0.4000",
            "0.2000",
            "0.0200",
            "0.0400",
            "0.2000",
            "0.4000",
            "0.4100",
            "0.4200",
        ],
        [
            "retriever, stage 2 (fine-tuned)",
            "0.5000",
            "0.2500",
            "0.0250",
            "0.0500",
            "0.2500",
            "0.5000",
            "0.5100",
            "0.5200",
        ],
        ["popularity", "0.2000", "0.1000", "0.0100", "0.0200", "0.1000", "0.2000", "0.2100", "0.2200"],
        ["als", "0.3000", "0.1500", "0.0150", "0.0300", "0.1500", "0.3000", "0.3100", "0.3200"],
    ]
    assert html.escape(section.NO_STAGE2) not in table


def test_quality_table_without_stage_2_or_relisten_events() -> None:
    table = section.quality_table(_frame(_quality("retriever", 0.4, relisten=False)))
    assert _rows(table)[0][-1] == "–"  # leave_one_out has no re-listened events
    assert html.escape(section.NO_STAGE2) in table
    assert section.quality_table(_frame([])) == f'<p class="note">{html.escape(section.NO_QUALITY)}</p>'


def test_recall_figure_has_a_line_per_model_on_a_log_axis() -> None:
    fig = section.recall_figure(_metrics())
    assert fig is not None
    assert [t.name for t in fig.data] == [
        "retriever, stage 1",
        "retriever, stage 2 (fine-tuned)",
        "popularity",
        "als",
    ]
    assert list(fig.data[0].x) == [10, 20, 100, 200]
    assert list(fig.data[0].y) == pytest.approx([0.02, 0.04, 0.2, 0.4])
    assert fig.layout.xaxis.type == "log"
    assert section.recall_figure(_frame([])) is None


def test_agreement_table_reads_the_measures_that_are_there() -> None:
    table = section.agreement_table(_metrics())
    assert "<th>agreement NDCG@20</th><th>ranker&#x27;s top 20 in the retriever&#x27;s top 50</th>" in table
    assert _rows(table) == [["stage 1", "0.6100", "0.7100"], ["stage 2 (fine-tuned)", "0.8100", "0.9100"]]
    other = _frame([("retriever:stage1", "agreement_ndcg@5", 0.3, "time")])
    assert _rows(section.agreement_table(other)) == [["stage 1", "0.3000"]]
    assert html.escape(section.NO_AGREEMENT) in section.agreement_table(_frame(_quality("retriever", 0.4)))


def test_funnel_table_has_a_row_per_surface_and_source_at_the_surface_n() -> None:
    table = section.funnel_table(_metrics(), TOPS)
    assert _rows(table) == [
        ["story", "SVD nearest songs", "20", "0.1100", "0.0110", "0.0550", "0.0500", "0.6000"],
        ["story", "retriever, stage 1", "20", "0.2200", "0.0220", "0.1100", "0.0500", "0.6000"],
        ["story", "retriever, stage 2 (fine-tuned)", "20", "0.3300", "0.0330", "0.1650", "0.0500", "0.6000"],
    ]
    assert html.escape(section.NO_FUNNEL) in section.funnel_table(_frame(_quality("retriever", 0.4)), TOPS)


def test_section_without_any_rows_gives_the_three_notes() -> None:
    page = section.section_html(_frame([]), TOPS)
    for note in (section.NO_QUALITY, section.NO_AGREEMENT, section.NO_FUNNEL):
        assert html.escape(note) in page
    assert "<table>" not in page
    assert "plotly-graph-div" not in page


@pytest.mark.spark
def test_render_and_write_report_read_the_latest_rows_of_gold_metrics(spark, tmp_lake) -> None:
    cfg = tmp_lake
    rows = [
        ("evaluate-1", "stack", "serving", "eval", "roc_auc", 0.8, "time"),
        ("evaluate-retriever-1", "retriever", "serving", "eval", "hr@10", 0.30, "time"),
        ("evaluate-retriever-2", "retriever", "serving", "eval", "hr@10", 0.40, "time"),  # the latest
        ("evaluate-retriever-2", "retriever", "serving", "calib", "hr@10", 0.99, "time"),  # not eval
        ("evaluate-retriever-2", "retriever", "serving", "eval", "recall@10", 0.05, "time"),
        ("evaluate-retriever-3", "retriever:stage2", "serving", "eval", "hr@10", 0.45, "time"),
        ("finetune-retriever-3", "retriever:stage2", "serving", "eval", "agreement_ndcg@20", 0.8, "time"),
        ("backtest-1", "funnel:story:stage1", "serving", "eval", "hr@20", 0.25, "time"),
    ]
    lake.write(
        spark, spark.createDataFrame(rows, schemas.METRICS), lake.table_path(cfg.lake.root, "gold", "metrics")
    )

    loaded = section.load_retriever_metrics(spark, cfg)
    assert sorted(loaded.itertuples(index=False, name=None)) == [
        ("funnel:story:stage1", "hr@20", 0.25, "time"),
        ("retriever", "hr@10", 0.40, "time"),
        ("retriever", "recall@10", 0.05, "time"),
        ("retriever:stage2", "agreement_ndcg@20", 0.8, "time"),  # the two runs of stage 2 both kept
        ("retriever:stage2", "hr@10", 0.45, "time"),
    ]
    fragment = section.render_retriever_section(spark, cfg)
    assert "<tr><td>retriever, stage 1</td><td>0.4000</td>" in fragment
    assert "<tr><td>stage 2 (fine-tuned)</td><td>0.8000</td></tr>" in fragment
    assert "<tr><td>story</td><td>retriever, stage 1</td><td>20</td><td>0.2500</td>" in fragment

    page = Path(report.write_report(spark, cfg, "evaluate-1")).read_text(encoding="utf-8")
    assert "<h2>Retriever: candidate generation</h2>" in page
    tables = fragment.split('<div class="plots">')[0]  # the figure's div id differs per render
    assert tables in page
    assert "recall@K (full ranking)" in page
