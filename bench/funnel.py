"""Benchmark: the retriever's two stages side by side, per pretraining loss, and the whole funnel.

For each pretraining loss (``--losses``, default ``sampled`` then ``sampled_logq``, the
configured default last so that the lake ends as the pipeline leaves it), on a lake where the
pipeline has run (bronze, the serving features, the stack; e.g. after ``make demo``):

1. ``relisten train-retriever`` with ``retriever.loss`` = the loss (stage 1; full-ranking quality
   of it and of the baselines into gold.metrics);
2. ``relisten finetune-retriever`` (stage 2 from that version; its quality and both stages'
   agreement with the ranker on the held-out teacher users);
3. ``relisten backtest`` with ``evaluation.funnel_sources = [svd, stage1, stage2]``: the final
   top-N lists as of the holdout cutoff with the ranker fed by each candidate source.

Then prints three tables from gold.metrics (every figure is read back from the rows the stages
wrote, nothing is computed here): retriever quality (full ranking of the eval events' songs),
agreement with the ranker, and the funnel; and the seconds of each stage.

    .venv/bin/python bench/funnel.py [--conf conf/local.yaml] [--losses sampled,sampled_logq]
                                     [--set key=value ...]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from relisten_spark import lake
from relisten_spark.cli import run_command
from relisten_spark.config import Config, load_config
from relisten_spark.retrieval import agreement
from relisten_spark.scoring import surfaces
from relisten_spark.session import build_session

QUALITY = ["hr@10", "ndcg@10", "recall@10", "recall@20", "recall@100", "recall@200", "event_recall@200"]
BASELINES = ["retrieval:popularity", "retrieval:svd", "retrieval:als"]
SOURCES = ["svd", "stage1", "stage2"]


def step(stage: str, cfg: Config, seconds: dict[str, float], loss: str) -> None:
    for label, _summary, took in run_command(stage, cfg):
        seconds[f"{loss} {label}"] = round(took, 1)
        print(f"{loss}: {label} done in {took:.1f} s", flush=True)


def metrics(cfg: Config) -> pd.DataFrame:
    """gold.metrics' ``eval`` rows ``[model, metric, value]``."""
    spark = build_session(cfg.spark)
    rows = lake.read(spark, lake.table_path(cfg.lake.root, "gold", "metrics")).where("split = 'eval'")
    return rows.select("model", "metric", "value").toPandas()


def pick(frame: pd.DataFrame, model: str, names: list[str]) -> list[float | None]:
    part = frame[frame["model"] == model].set_index("metric")["value"]
    return [round(float(part[n]), 4) if n in part.index else None for n in names]


def markdown(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def tables(cfg: Config, per_loss: dict[str, pd.DataFrame]) -> str:
    f = cfg.retriever.finetune
    agree = list(agreement.metric_names(f.agreement_n, f.agreement_k))
    quality, agreed, funnel = [], [], []
    for loss, frame in per_loss.items():
        quality.append([loss, "stage 1", *pick(frame, "retriever", QUALITY)])
        quality.append([loss, "stage 2", *pick(frame, "retriever:stage2", QUALITY)])
        agreed.append([loss, "stage 1", *pick(frame, "retriever:stage1", agree)])
        agreed.append([loss, "stage 2", *pick(frame, "retriever:stage2", agree)])
        for surface in cfg.scoring.surfaces:
            n = surfaces.surface_top_n(cfg.scoring, surface)
            names = [f"hr@{n}", f"ndcg@{n}", f"target_hr@{n}", "catalog_coverage", "popularity_share"]
            for source in SOURCES:
                funnel.append([loss, surface, source, *pick(frame, f"funnel:{surface}:{source}", names)])
    last = next(reversed(per_loss.values()))
    quality += [["-", model, *pick(last, model, QUALITY)] for model in BASELINES]
    n = surfaces.surface_top_n(cfg.scoring, next(iter(cfg.scoring.surfaces)))
    return "\n\n".join(
        [
            "retriever quality (full ranking, eval events' songs, heard songs excluded)",
            markdown(["pretraining loss", "model", *QUALITY], quality),
            "agreement with the ranker (held-out teacher users)",
            markdown(["pretraining loss", "stage", *agree], agreed),
            f"the funnel: final top-N lists as of the cutoff (N per surface; first surface N = {n})",
            markdown(
                [
                    "pretraining loss",
                    "surface",
                    "candidates",
                    "HR@N",
                    "NDCG@N",
                    "target HR@N",
                    "coverage",
                    "pop. share",
                ],
                funnel,
            ),
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conf", default="conf/local.yaml")
    parser.add_argument("--losses", default="sampled,sampled_logq")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("py4j", "pyspark"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    seconds: dict[str, float] = {}
    per_loss: dict[str, pd.DataFrame] = {}
    cfg = load_config(args.conf, args.set)
    for loss in args.losses.split(","):
        cfg = load_config(
            args.conf, [*args.set, f"retriever.loss={loss}", "evaluation.funnel_sources=[svd,stage1,stage2]"]
        )
        step("train-retriever", cfg, seconds, loss)
        step("finetune-retriever", cfg, seconds, loss)
        step("backtest", cfg, seconds, loss)
        per_loss[loss] = metrics(cfg)
    print()
    print(tables(cfg, per_loss))
    print()
    print(markdown(["stage", "seconds"], [[k, v] for k, v in seconds.items()]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
