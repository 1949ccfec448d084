"""Retriever stage 2: fine-tuning on the ranker's scores, its lineage, and candidates by stage.

The teacher lists are a toy written in the shards' format: the toy world of the stage-1 tests
(histories of consecutive items), each user's list 20 random items, and a ranker that prefers
the same items for everyone (score = (item % 7) / 7 plus noise), so what is learnt on the
training users carries over to the held-out ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from retrieval_fixtures import in_process
from test_train import MAX_LEN, N_ITEMS, toy_config, write_toy_sequences

from relisten_spark.models import registry
from relisten_spark.retrieval import agreement, nearest
from relisten_spark.retrieval.finetune import build_finetune_job, finetune_worker
from relisten_spark.retrieval.job import hyper_of, read_item_table
from relisten_spark.retrieval.model import Retriever
from relisten_spark.retrieval.sequences import TOKENS, VOCAB_FILE, SequenceSet
from relisten_spark.retrieval.worker import save_retriever
from relisten_spark.runtime import RETRIEVER

LIST = 20


def _teacher_shards(root: Path, seqs: SequenceSet) -> dict[str, str]:
    rng = np.random.default_rng(1)
    table = pq.read_table(seqs.calib, columns=list(TOKENS))
    n = table.num_rows
    lists = np.stack([rng.choice(np.arange(1, N_ITEMS + 1), LIST, replace=False) for _ in range(n)])
    ranker = (lists % 7) / 7 + rng.normal(scale=0.02, size=lists.shape)
    full = table.append_column("msno", pa.array([f"u{i}" for i in range(n)]))
    full = full.append_column("candidates", pa.array(lists.tolist(), pa.list_(pa.int32())))
    full = full.append_column("ranker", pa.array(ranker.tolist(), pa.list_(pa.float64())))
    out = {}
    for part, rows in (("train", slice(0, 36)), ("holdout", slice(36, n))):
        (root / part).mkdir(parents=True)
        pq.write_table(full.slice(rows.start, rows.stop - rows.start), root / part / "part-0.parquet")
        out[part] = str(root / part)
    return out


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """The config, the parent version's folder and the teacher shards."""
    tmp = tmp_path_factory.mktemp("finetune")
    seqs = write_toy_sequences(tmp / "work")
    cfg = toy_config(
        tmp,
        f"retriever.finetune.candidates={LIST}",
        "retriever.finetune.agreement_n=5",
        "retriever.finetune.agreement_k=10",
        "retriever.finetune.epochs=6",
        "retriever.finetune.batch_size=12",
        "retriever.finetune.learning_rate=0.01",
        "retriever.finetune.softmax_weight=0.5",
        "retriever.finetune.early_stopping_patience=0",
    )
    meta, _ = read_item_table(seqs)
    torch.manual_seed(0)
    model = Retriever(hyper_of(cfg.retriever, seqs), torch.from_numpy(meta))
    vocab = Path(seqs.root) / VOCAB_FILE
    version = save_retriever(cfg.models.root, model, seqs.items, vocab, {"model": RETRIEVER, "stage": 1})
    parent = registry.resolve(cfg.models.root, RETRIEVER, version).absolute()
    return cfg, parent, _teacher_shards(tmp / "teacher", seqs)


def test_finetuning_learns_the_ranker_order_and_records_its_lineage(tuned, monkeypatch) -> None:
    cfg, parent, folders = tuned
    job = build_finetune_job(cfg, parent, folders, "ft-run", {"stack_version": "stack-v1"})
    result = in_process(finetune_worker, job, "a", monkeypatch, 29571)
    ndcg, share = agreement.metric_names(5, 10)
    before, after = result["parent"], result["finetuned"]
    assert after[ndcg] > before[ndcg] + 0.05  # held-out users: the ranker's order was learnt
    assert after[share] >= before[share]
    folder = registry.resolve(cfg.models.root, RETRIEVER, result["version"])
    meta = registry.load_metadata(folder)
    assert (meta["stage"], meta["parent_version"], meta["stack_version"]) == (2, parent.name, "stack-v1")
    assert meta["hyper"]["max_len"] == MAX_LEN
    assert meta["metrics"]["holdout_users"] == 12
    assert [h["epoch"] for h in meta["metrics"]["history"]] == list(range(6))
    # the registry resolves latest by stage; without a stage, the newest version
    root = cfg.models.root
    assert nearest.resolve_retriever(root, "latest", 1) == parent
    assert nearest.resolve_retriever(root, "latest", 2) == folder.absolute()
    assert nearest.resolve_retriever(root, "latest") == folder.absolute()


def test_agreement_matches_a_direct_computation() -> None:
    rng = np.random.default_rng(5)
    z, r = rng.normal(size=(3, 8)), rng.uniform(size=(3, 8))
    valid = np.ones((3, 8), dtype=bool)
    valid[2, 5:] = False
    n, k = 3, 4
    ndcgs, shares = [], []
    for zu, ru, vu in zip(z, r, valid, strict=True):
        zu, ru = zu[vu], ru[vu]
        discount = 1 / np.log2(np.arange(2, n + 2))
        dcg = (ru[np.argsort(-zu)[:n]] * discount).sum()
        ndcgs.append(dcg / (np.sort(ru)[::-1][:n] * discount).sum())
        shares.append(len(set(np.argsort(-ru)[:n]) & set(np.argsort(-zu)[:k])) / n)
    got = agreement.agreement_sums(torch.tensor(z), torch.tensor(r), torch.tensor(valid), n, k).tolist()
    assert np.allclose(got, [sum(ndcgs), sum(shares), 3.0])


@pytest.mark.slow
@pytest.mark.spark
def test_stage_distils_the_stand_in_stack_on_a_tiny_lake(spark, tmp_lake) -> None:
    """features (serving) + a stand-in stack + a tiny stage-1 version, then the whole stage: the
    teacher table, a registered stage-2 version with its lineage, both stages' gold.metrics rows."""
    import sys

    import lightgbm as lgb
    from stand_in_models import register_stack

    from relisten_spark import lake
    from relisten_spark.cli import run_command
    from relisten_spark.features import manifest
    from relisten_spark.features.catalogue import gbdt_columns
    from relisten_spark.retrieval.sequences import write_sequences

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "features"))
    from retrieval_fixtures import save_tiny_retriever
    from tiny import tiny_frames

    cfg = load_tiny_cfg(tmp_lake)
    frames = tiny_frames(spark)
    for name in ("events", "members", "songs", "song_extra"):
        lake.write(spark, getattr(frames, name), lake.table_path(cfg.lake.root, "bronze", name))
    run_command("features", cfg)
    serving = [c for c in gbdt_columns() if c in {s.name for s in manifest.profile_specs("serving")}]
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, len(serving))), rng.integers(0, 2, 200)
    booster = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(x, y), num_boost_round=3)
    stack = register_stack(cfg.models.root, booster, serving)
    parent = save_tiny_retriever(cfg.models.root, write_sequences(spark, cfg, Path(cfg.models.root) / "seqs"))

    ((_, summary, _),) = run_command("finetune-retriever", cfg)
    assert (summary["parent_version"], summary["stack_version"]) == (parent, stack)
    meta = registry.load_metadata(registry.resolve(cfg.models.root, RETRIEVER, summary["version"]))
    assert (meta["stage"], meta["parent_version"], meta["stack_version"]) == (2, parent, stack)
    teacher = lake.read(spark, lake.table_path(cfg.lake.root, "silver", "retriever_teacher")).toPandas()
    assert len(teacher)
    assert teacher["ranker_score"].between(0, 1).all()
    assert set(teacher["part"]) <= {"train", "holdout"}
    assert teacher.groupby("msno")["retriever_rank"].max().max() <= cfg.retriever.finetune.candidates
    metrics = lake.read(spark, lake.table_path(cfg.lake.root, "gold", "metrics")).toPandas()
    ndcg, share = agreement.metric_names(2, 3)
    for model in ("retriever:stage1", "retriever:stage2"):
        assert {ndcg, share} <= set(metrics.loc[metrics["model"] == model, "metric"])
    assert "recall@200" in set(metrics.loc[metrics["model"] == "retriever:stage2", "metric"])


def load_tiny_cfg(tmp_lake):
    """The tiny lake's config: serving features, small lists, one fine-tuning epoch."""
    from relisten_spark.config import load_config

    overrides = [
        "features.profile=serving",
        "features.svd_power_iters=1",
        "features.svd_oversample=2",
        "scoring.candidates=5",
        "scoring.candidate_margin=5",
        "scoring.top_n=3",
        "retriever.max_len=8",
        "retriever.uniform_negatives=4",
        "retriever.finetune.users=null",
        "retriever.finetune.candidates=6",
        "retriever.finetune.holdout_share=0.5",
        "retriever.finetune.epochs=1",
        "retriever.finetune.agreement_n=2",
        "retriever.finetune.agreement_k=3",
        "retriever.threads_per_process=1",
    ]
    base = [
        f"lake.root={tmp_lake.lake.root}",
        f"models.root={tmp_lake.models.root}",
        "spark.master=local[2]",
        "tracking.enabled=false",
    ]
    return load_config(None, [*base, *overrides])
