"""Benchmark: the retriever on MovieLens-100k beside RecBole 1.2.1's SASRec and Spark ALS, in one run.

Protocol (the one the peers report): leave-one-out. Each user's ratings are ordered by
``timestamp`` (ties keep the file order, as RecBole's stable sort does); the last one is the test
item, the one before the validation item, the rest is training. Full ranking over the whole
catalogue, one relevant item per user: HR@K = the test item is in the top K, NDCG@K =
1 / log2(rank + 1) when it is. NO already-heard filter for any figure: RecBole masks heard items
for its general models but not for SASRec, so neither do we nor ALS.

* ours — the engine's own path: ``relisten ingest`` of the two files through the interactions
  source (``data.source: interactions``, leave-one-out), the retriever's sequences
  (:func:`~relisten_spark.retrieval.sequences.write_sequences`), then ``build_job`` +
  ``TorchDistributor`` once per loss; early stopping on the validation item's NDCG@10; the test
  item ranked from the user's last ``max_len`` events before it (the ``eval`` shards);
* RecBole 1.2.1 SASRec with its defaults (2 layers, 2 heads, hidden 64, inner 256, dropout 0.5,
  max length 50, CE loss, ``{LS: valid_and_test}``, order by time, full ranking, early stopping
  on valid NDCG@10, ``stopping_step`` 10), in a separate virtual environment this script creates
  under ``bench/out/`` (``numpy<2``: RecBole reads ``np.float_``; ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``
  for its best-checkpoint reload; ``torch.autograd.set_detect_anomaly(False)`` after importing
  it, which its ``sine.py`` switches on and which slows SASRec's steps);
* Spark ML ALS (``implicitPrefs=True``) through the engine's own
  :func:`~relisten_spark.retrieval.als.als_vectors` (confidence = rows per pair: 1 here), trained
  on every event but the test one; every trained item ranked by dot product, scored by the same
  code as ours.

Training seconds = the model's fit (training + per-epoch validation, not data loading nor process
start-up); s/epoch = training seconds of an epoch without validation. Both trainers get the
machine's cores (one process).

Epochs are capped so that the whole run fits in about 20 minutes on 2 shared cores, where one
RecBole SASRec epoch (its 99k augmented prefixes of up to 50 items) takes about 270 s: by default
RecBole trains 2 epochs, ours at most 12 (patience 5), so neither is trained to convergence and the
figures compare the models at a small, stated training budget. ``--recbole-epochs 300
--epochs 300 --patience 10`` runs both to early stopping (hours on such a machine).

    .venv/bin/python bench/retriever.py                     # everything, about 20 minutes on 2 cores
    .venv/bin/python bench/retriever.py --losses sampled_logq --skip-recbole --skip-als
    .venv/bin/python bench/retriever.py --losses sampled_logq --skip-recbole --set retriever.item_bias=false
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from relisten_spark.config import Config, load_config
from relisten_spark.data import ingest
from relisten_spark.retrieval.als import AlsSettings, als_vectors
from relisten_spark.retrieval.job import build_job
from relisten_spark.retrieval.losses import LOSSES
from relisten_spark.retrieval.predict import load_retriever
from relisten_spark.retrieval.sequences import (
    TOKENS,
    SequenceSet,
    holdout_parts,
    read_inputs,
    write_sequences,
)
from relisten_spark.retrieval.stream import pad_left
from relisten_spark.retrieval.train import train
from relisten_spark.session import build_session

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "ml-100k"
OUT = HERE / "out" / "retriever"
VENV = HERE / "out" / "recbole-venv"
KS = (10, 20)

# ---- data ---------------------------------------------------------------------------------------


def bench_config(args: argparse.Namespace, *overrides: str) -> Config:
    """ML-100k through the interactions source (leave-one-out), lake and models under ``OUT``."""
    return load_config(
        None,
        [
            "spark.master=local[2]",
            "spark.shuffle_partitions=4",
            f"lake.root={OUT / 'lake'}",
            f"models.root={OUT / 'models'}",
            "data.source=interactions",
            f"data.interactions.path={args.data / 'ml-100k.inter'}",
            f"data.interactions.items_path={args.data / 'ml-100k.item'}",
            "data.interactions.protocol=leave_one_out",
            f"retriever.max_len={args.max_len}",
            *overrides,
            *args.set,
        ],
    )


def prepare(spark: SparkSession, cfg: Config) -> tuple[SequenceSet, DataFrame]:
    """``relisten ingest`` of ML-100k and the retriever's sequences; the events with their
    leave-one-out ``part`` (fit / calib / eval)."""
    ingest.run(spark, cfg)
    seqs = write_sequences(spark, cfg, OUT / "sequences")
    events, _ = read_inputs(spark, cfg)
    return seqs, holdout_parts(events, cfg).select("msno", "song_id", "part").cache()


# ---- metrics ------------------------------------------------------------------------------------


def loo_metrics(top: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """HR@K and NDCG@K of ranked lists ``top`` ``[users, >= max K]`` with one relevant item each."""
    out = {}
    for k in KS:
        match = top[:, :k] == target[:, None]
        out[f"hr@{k}"] = float(match.any(1).mean())
        out[f"ndcg@{k}"] = float((match / np.log2(np.arange(2, k + 2))).sum(1).mean())
    return out


def rank_ours(models_root: str, version: str, seqs: SequenceSet) -> dict[str, float]:
    """The test item's metrics for the retriever ``version``: full ranking, padding excluded."""
    model = load_retriever(models_root, version)
    table = pq.read_table(seqs.eval)
    tokens = [pad_left(table.column(name), seqs.vocab.max_len).astype(np.int64) for name in TOKENS]
    target = np.array([t[0] for t in table.column("targets").to_pylist()])
    users = model.user_vectors(*tokens)
    scores = torch.from_numpy(users @ model.item_matrix().T)
    scores[:, 0] = -np.inf
    return loo_metrics(scores.topk(max(KS), dim=1).indices.numpy(), target)


# ---- runners ------------------------------------------------------------------------------------


def run_ours(args: argparse.Namespace, seqs: SequenceSet, loss: str) -> dict[str, float]:
    cfg = bench_config(
        args,
        f"retriever.loss={loss}",
        f"retriever.epochs={args.epochs}",
        f"retriever.early_stopping_patience={args.patience}",
        f"retriever.batch_size={args.batch_size}",
        f"retriever.learning_rate={args.lr}",
        f"retriever.dropout={args.dropout}",
        f"retriever.uniform_negatives={args.uniform_negatives}",
        f"retriever.in_batch_negatives={args.in_batch_negatives or 'null'}",
        "retriever.num_processes=1",
    )
    job = build_job(cfg, seqs, f"bench-{loss}", {"data_source": "ml-100k"})
    result = train(job, cfg)
    return {
        **rank_ours(cfg.models.root, result["version"], seqs),
        "train_s": result["train_seconds"],
        "s_per_epoch": result["seconds_per_epoch"],
        "epochs": result["epochs_run"],
        "best_epoch": result["best_epoch"] + 1,
    }


def run_als(parts: DataFrame, args: argparse.Namespace) -> dict[str, float]:
    """The engine's implicit ALS (:func:`~relisten_spark.retrieval.als.als_vectors`) on every event
    but the test one; each test user's top 20 over every trained item by dot product."""
    settings = AlsSettings(
        rank=args.als_rank, max_iter=args.als_iter, reg_param=args.als_reg, alpha=args.als_alpha
    )
    started = time.perf_counter()
    users, items = (v.toPandas() for v in als_vectors(parts.where(F.col("part") != "eval"), settings))
    seconds = time.perf_counter() - started  # 943 user and 1682 item vectors
    test = parts.where(F.col("part") == "eval").select("msno", "song_id").toPandas()
    user_matrix = np.stack(users.set_index("msno")["vector"].reindex(test["msno"]).to_numpy())
    scores = torch.from_numpy(user_matrix @ np.stack(items["vector"].to_numpy()).T)
    top = items["song_id"].to_numpy()[scores.topk(max(KS), dim=1).indices.numpy()]
    return {
        **loo_metrics(top, test["song_id"].to_numpy()),
        "train_s": seconds,
        "s_per_epoch": seconds / args.als_iter,
        "epochs": args.als_iter,
    }


RECBOLE_RUNNER = r"""
import json, sys, time
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.model.sequential_recommender import SASRec  # imports sine.py, which turns on anomaly detection
from recbole.trainer import Trainer
from recbole.utils import init_seed

torch.autograd.set_detect_anomaly(False)
data_path, out, epochs, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
config = Config(model="SASRec", dataset="ml-100k", config_dict={
    "data_path": data_path, "checkpoint_dir": out, "epochs": epochs, "stopping_step": 10,
    "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
    "metrics": ["Hit", "NDCG"], "topk": [10, 20], "valid_metric": "NDCG@10",
    "train_neg_sample_args": None, "loss_type": "CE", "device": "cpu", "use_gpu": False,
    "show_progress": False, "seed": 2020, "reproducibility": True,
})
init_seed(config["seed"], config["reproducibility"])
dataset = create_dataset(config)
train_data, valid_data, test_data = data_preparation(config, dataset)
model = SASRec(config, train_data.dataset)
trainer = Trainer(config, model)
epoch_seconds = []
plain = trainer._train_epoch
def timed(*a, **k):
    t0 = time.perf_counter(); r = plain(*a, **k); epoch_seconds.append(time.perf_counter() - t0); return r
trainer._train_epoch = timed
started = time.perf_counter()
best_valid, _ = trainer.fit(train_data, valid_data, saved=True, show_progress=False)
fit_s = time.perf_counter() - started
test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
print("RESULT " + json.dumps({**{k: float(v) for k, v in test.items()}, "train_s": fit_s,
      "s_per_epoch": sum(epoch_seconds) / len(epoch_seconds), "epochs": len(epoch_seconds),
      "best_valid_ndcg@10": float(best_valid), "anomaly": torch.is_anomaly_enabled(),
      "users": int(dataset.user_num - 1), "items": int(dataset.item_num - 1)}))
"""


def ensure_recbole_venv() -> Path:
    """The benchmark-only environment: RecBole 1.2.1 beside torch 2.13.0, ``numpy<2``."""
    python = VENV / "bin" / "python"
    probe = [str(python), "-c", "import recbole, numpy; assert recbole.__version__ == '1.2.1'"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "torch==2.13.0", "recbole==1.2.1", "numpy<2"]
    subprocess.run(pip, check=True)
    return python


def run_recbole(args: argparse.Namespace) -> dict[str, float]:
    python = ensure_recbole_venv()
    work = OUT / "recbole"
    work.mkdir(parents=True, exist_ok=True)
    runner = work / "run_sasrec.py"
    runner.write_text(RECBOLE_RUNNER)
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "PYTHONPATH": ""}
    threads = str(os.cpu_count() or 1)
    cmd = [
        str(python),
        str(runner),
        str(args.data.parent),
        str(work / "saved"),
        str(args.recbole_epochs),
        threads,
    ]
    done = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    (work / "output.log").write_text(done.stdout + done.stderr)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"RecBole failed (rc {done.returncode}); see {work / 'output.log'}")
    return json.loads(lines[-1][len("RESULT ") :])


# ---- main ---------------------------------------------------------------------------------------


def _table(rows: dict[str, dict[str, float]]) -> str:
    names = ("HR@10", "NDCG@10", "HR@20", "NDCG@20", "train s", "s/epoch", "epochs")
    head = f"{'model':<34} " + " ".join(f"{n:>8}" for n in names)
    lines = [head, "-" * len(head)]
    for name, r in rows.items():
        lines.append(
            f"{name:<34} {r['hr@10']:>8.4f} {r['ndcg@10']:>8.4f} {r['hr@20']:>8.4f} {r['ndcg@20']:>8.4f} "
            f"{r['train_s']:>8.1f} {r['s_per_epoch']:>8.2f} {int(r['epochs']):>8}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder of ml-100k.inter / ml-100k.item")
    parser.add_argument(
        "--losses", default=",".join(LOSSES), help="retriever losses to train, comma-separated"
    )
    parser.add_argument("--max-len", type=int, default=50, help="ours: retriever.max_len (RecBole: 50)")
    parser.add_argument("--epochs", type=int, default=12, help="most epochs of ours")
    parser.add_argument("--patience", type=int, default=5, help="ours: epochs without a better valid NDCG@10")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--uniform-negatives", type=int, default=256)
    parser.add_argument(
        "--in-batch-negatives", type=int, default=0, help="ours: retriever.in_batch_negatives; 0 = all"
    )
    parser.add_argument("--recbole-epochs", type=int, default=2, help="most epochs of RecBole's SASRec")
    parser.add_argument("--als-rank", type=int, default=64)
    parser.add_argument("--als-iter", type=int, default=15)
    parser.add_argument("--als-reg", type=float, default=0.1)
    parser.add_argument("--als-alpha", type=float, default=10.0)
    parser.add_argument("--skip-recbole", action="store_true")
    parser.add_argument("--skip-als", action="store_true")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="one more config override of ours"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    spark = build_session(bench_config(args).spark)
    seqs, parts = prepare(spark, bench_config(args))
    print(f"ml-100k: {seqs.vocab.users} users, {seqs.vocab.items - 1} items, {parts.count()} ratings")
    rows: dict[str, dict[str, float]] = {}
    if not args.skip_recbole:
        recbole = run_recbole(args)
        rows["RecBole 1.2.1 SASRec (defaults)"] = {
            **recbole,
            **{k.replace("hit", "hr"): v for k, v in recbole.items()},
        }
    for loss in args.losses.split(","):
        rows[f"ours, {loss}"] = run_ours(args, seqs, loss)
    if not args.skip_als:
        rows[f"Spark ALS (implicit, rank {args.als_rank})"] = run_als(parts, args)
    print(_table(rows))
    print(json.dumps(rows, indent=1))
    spark.stop()


if __name__ == "__main__":
    main()
