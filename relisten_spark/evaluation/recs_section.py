"""The report's recommendations section: the measures of the top-N lists per surface.

From the ``topn:*`` rows of gold.metrics (written by ``relisten backtest``,
:mod:`~relisten_spark.evaluation.backtest`):

* the backtest's accuracy against the eval period (HitRate, Recall, NDCG at N, MRR; relevant =
  any eval play, and = a replay within a month, ``target = 1``);
* the beyond-accuracy measures of the backtest lists and of the production lists side by side;
* the levers' trade-off: NDCG@N against catalogue coverage and against the popularity share for
  every setting of the one backtest run, and the same figures as a table;
* a sample of production lists (the latest ``run_date`` of ``gold.recs_<surface>``, with each
  song's name, artist and genres from bronze) with their reasons, for three users.

Only small frames reach the driver: metric rows (surfaces x settings x a few dozen) and three
users' lists.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, StructType

from relisten_spark import lake
from relisten_spark.config import Config
from relisten_spark.evaluation import plots
from relisten_spark.evaluation.backtest import CONFIGURED, PREFIX, metrics_path
from relisten_spark.features.bronze import read_bronze
from relisten_spark.scoring import enriched, score, surfaces

SAMPLE_USERS = 3
ACCURACY = ("hr@{n}", "recall@{n}", "ndcg@{n}", "mrr", "target_hr@{n}", "target_ndcg@{n}", "target_mrr")
BEYOND = (
    ("catalog_coverage", "coverage"),
    ("popularity_share", "popularity share"),
    ("novelty", "novelty (bits)"),
    ("artist_diversity", "artist diversity"),
    ("genre_diversity", "genre diversity"),
    ("heard_share", "already heard"),
    ("exposure_gini", "exposure Gini"),
)
NOTE = (
    "Backtest: each eval user's top-N per surface as the engine would have made it at the holdout "
    "cutoff (candidates, serving features and models from rows before it only), compared with the "
    "songs they played in the eval period (target_*: the plays replayed within a month). "
    "Production: the latest lists of relisten score, against the whole log. Coverage: distinct songs "
    "shown / songs of the log; popularity share: rows from the 10 % most played songs; novelty: mean "
    "-log2 of the share of users who played the song; diversity: share of a list's song pairs of "
    "different artists (first genres); Gini of the rows per song over the catalogue."
)


def load_topn(spark: SparkSession, cfg: Config) -> pd.DataFrame:
    """``[surface, setting, split, metric, value]`` of gold.metrics' ``topn:*`` rows (a few
    hundred rows); empty without them."""
    columns = ["surface", "setting", "split", "metric", "value"]
    path = metrics_path(cfg)
    if not lake.exists(path):
        return pd.DataFrame(columns=columns)
    parts = F.split(F.col("model"), ":")
    rows = (
        lake.read(spark, path)
        .where(F.col("model").startswith(f"{PREFIX}:"))
        .select(
            F.get(parts, 1).alias("surface"),
            F.coalesce(F.get(parts, 2), F.lit(CONFIGURED)).alias("setting"),
            "split",
            "metric",
            "value",
        )
    )
    return rows.toPandas()


def _value(topn: pd.DataFrame, surface: str, setting: str, split: str, metric: str) -> float | None:
    hit = topn[
        (topn["surface"] == surface)
        & (topn["setting"] == setting)
        & (topn["split"] == split)
        & (topn["metric"] == metric)
    ]
    return None if hit.empty else float(hit["value"].iloc[0])


def _count(topn: pd.DataFrame, surface: str, split: str) -> int | None:
    """The number of lists measured (a count, shown without decimals)."""
    value = _value(topn, surface, CONFIGURED, split, "lists")
    return None if value is None else round(value)


def accuracy_table(topn: pd.DataFrame, names: Sequence[str], cfg: Config) -> str:
    headers = ["surface", "N", "users"]
    rows = []
    for name in names:
        n = surfaces.surface_top_n(cfg.scoring, name)
        metrics = [m.format(n=n) for m in ACCURACY]
        rows.append(
            [
                name,
                n,
                _count(topn, name, "eval"),
                *[_value(topn, name, CONFIGURED, "eval", m) for m in metrics],
            ]
        )
    headers += [m.format(n="N") for m in ACCURACY]
    return plots.html_table(headers, rows, "Backtest accuracy against the eval period (configured levers)")


def beyond_table(topn: pd.DataFrame, names: Sequence[str]) -> str:
    others = sorted({m for m in topn["metric"] if m.startswith("overlap_")})
    headers = ["surface", "lists", "count", *[label for _, label in BEYOND], *others]
    rows = []
    for name in names:
        for split, label in (("eval", "backtest"), ("production", "production")):
            values = [
                _value(topn, name, CONFIGURED, split, m) for m, _ in (*BEYOND, *[(o, o) for o in others])
            ]
            rows.append([name, label, _count(topn, name, split), *values])
    return plots.html_table(headers, rows, "Beyond accuracy: backtest lists and production lists")


def tradeoff(topn: pd.DataFrame, name: str, n: int) -> pd.DataFrame:
    """``[setting, ndcg, hr, coverage, popularity, novelty, genre]`` of one surface's settings."""
    wanted = {
        f"ndcg@{n}": "ndcg",
        f"hr@{n}": "hr",
        "catalog_coverage": "coverage",
        "popularity_share": "popularity",
        "novelty": "novelty",
        "genre_diversity": "genre",
    }
    part = topn[(topn["surface"] == name) & (topn["split"] == "eval") & topn["metric"].isin(list(wanted))]
    wide = part.pivot_table(index="setting", columns="metric", values="value", aggfunc="first")
    wide = wide.rename(columns=wanted).reindex(columns=list(wanted.values()))
    return wide.reset_index().sort_values("setting").reset_index(drop=True)


def tradeoff_figure(table: pd.DataFrame, x: str, xlabel: str, title: str, n: int) -> go.Figure:
    """NDCG@N against ``x`` per setting, the configured setting marked."""
    fig = go.Figure()
    for configured, part in table.groupby(table["setting"] == CONFIGURED):
        fig.add_trace(
            go.Scatter(
                x=part[x],
                y=part["ndcg"],
                text=part["setting"],
                mode="markers+text",
                textposition="top center",
                marker={"size": 12 if configured else 8, "symbol": "star" if configured else "circle"},
                name="configured" if configured else "lever settings",
            )
        )
    return plots.layout(fig, title, xlabel, f"NDCG@{n}")


def _reasons_text(recs: DataFrame) -> Column:
    """One string of a list row's reasons, whatever their type (strings or structs)."""
    dtype = recs.schema["reasons"].dataType
    if isinstance(dtype, ArrayType) and isinstance(dtype.elementType, StructType):
        return enriched.reasons_text(F.col("reasons"))
    return F.concat_ws("; ", F.col("reasons").cast("array<string>"))


def sample_lists(spark: SparkSession, cfg: Config, name: str, users: Sequence[str] | None) -> pd.DataFrame:
    """Three users' production lists of surface ``name`` (the latest run_date): ``[msno, rank,
    song, artist, genres, score, why]``; empty without the table."""
    columns = ["msno", "rank", "song", "artist", "genres", "score", "why"]
    path = score.recs_path(cfg, name)
    if not lake.exists(path):
        return pd.DataFrame(columns=columns)
    recs = lake.read(spark, path)
    [(latest,)] = recs.agg(F.max("run_date")).collect()  # one value
    recs = recs.where(F.col("run_date") == latest)
    if users is None:
        users = [
            r["msno"] for r in recs.select("msno").distinct().orderBy("msno").limit(SAMPLE_USERS).collect()
        ]
    frames = read_bronze(spark, cfg)
    names = frames.song_extra.select("song_id", "name").dropDuplicates(["song_id"])
    meta = frames.songs.select("song_id", "artist_name", "genre_ids").dropDuplicates(["song_id"])
    out = (
        recs.where(F.col("msno").isin(*users))
        .join(names, "song_id", "left")
        .join(meta, "song_id", "left")
        .select(
            "msno",
            "rank",
            F.coalesce("name", "song_id").alias("song"),
            F.col("artist_name").alias("artist"),
            F.col("genre_ids").alias("genres"),
            "score",
            _reasons_text(recs).alias("why"),
        )
        .orderBy("msno", "rank")
    )
    return pd.DataFrame(out.toPandas(), columns=columns)  # three users' lists


def _sample_html(spark: SparkSession, cfg: Config, names: Sequence[str]) -> str:
    parts = ["<h3>Sample lists (production)</h3>"]
    users: list[str] | None = None
    for name in names:
        lists = sample_lists(spark, cfg, name, users)
        if lists.empty:
            parts.append(plots.note_html(f"{name}: no production lists (run relisten score)."))
            continue
        users = sorted(lists["msno"].unique().tolist())
        for user, rows in lists.groupby("msno", sort=True):
            caption = f"{name}: user {str(user)[:12]}…"
            body = rows[["rank", "song", "artist", "genres", "score", "why"]].to_numpy().tolist()
            parts.append(
                plots.html_table(["rank", "song", "artist", "genres", "score", "why"], body, caption)
            )
    return "".join(parts)


NO_TOPN = "No top-N measures in gold.metrics: run `relisten backtest` (after score)."


def render_recs_section(spark: SparkSession, cfg: Config, run_id: str | None) -> str:
    """The section as an HTML fragment (plotly figures without plotly.js, which the page loads
    once). ``run_id`` (the report's evaluate run) is not a filter here: the ``topn:*`` rows are
    those of the latest backtest, which evaluate carries over."""
    del run_id
    head = "<h2>Recommendations: top-N lists per surface</h2>"
    topn = load_topn(spark, cfg)
    if topn.empty:
        return head + plots.note_html(NO_TOPN)
    names = [s for s in cfg.scoring.surfaces if s in set(topn["surface"])]
    parts = [head, plots.note_html(NOTE), accuracy_table(topn, names, cfg), beyond_table(topn, names)]
    for name in names:
        n = surfaces.surface_top_n(cfg.scoring, name)
        table = tradeoff(topn, name, n)
        parts.append(f"<h3>{html.escape(name)}: levers' trade-off (backtest)</h3>")
        figures = [
            tradeoff_figure(table, "coverage", "catalogue coverage", f"{name}: NDCG@{n} vs coverage", n),
            tradeoff_figure(table, "popularity", "popularity share", f"{name}: NDCG@{n} vs popularity", n),
        ]
        parts.append('<div class="plots">' + "".join(plots.figure_html(f) for f in figures) + "</div>")
        parts.append(
            plots.html_table(
                ["setting", f"NDCG@{n}", f"HR@{n}", "coverage", "popularity share", "novelty", "genre div."],
                table.to_numpy().tolist(),
                f"{name}: every setting of the backtest (pop: popularity penalty; mmr: diversity re-rank)",
            )
        )
    parts.append(_sample_html(spark, cfg, names))
    return "".join(parts)
