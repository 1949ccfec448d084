"""Retriever training: DDP ranks through TorchDistributor, determinism, registry, inference.

The sequences are a toy world written in the sequences' format: 30 items on a cycle, every user
listens to consecutive items, so the next item is always the current one plus one.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from retrieval_fixtures import in_process

from relisten_spark.config import Config, load_config
from relisten_spark.models import registry
from relisten_spark.retrieval.job import RetrieverJob, build_job, refit_job
from relisten_spark.retrieval.predict import load_retriever
from relisten_spark.retrieval.sequences import VOCAB_FILE, SequenceSet, Vocab
from relisten_spark.retrieval.train import train
from relisten_spark.retrieval.worker import retriever_worker, window_targets
from relisten_spark.runtime import RETRIEVER, RETRIEVER_MODEL_FILE

N_ITEMS, USERS, MAX_LEN = 30, 48, 8


def _meta(items: np.ndarray) -> dict[str, np.ndarray]:
    return {"artists": items % 5 + 1, "genres": items % 3 + 1, "languages": np.ones_like(items)}


def _token_table(seqs: np.ndarray, sources: np.ndarray, **extra: list[list[int]]) -> pa.Table:
    columns = {
        "user_index": np.arange(len(seqs), dtype=np.int32),
        "items": seqs,
        **_meta(seqs),
        "sources": sources,
    }
    arrays = {
        k: pa.array(
            v.tolist() if k != "user_index" else v, pa.list_(pa.int32()) if k != "user_index" else None
        )
        for k, v in columns.items()
    }
    return pa.table({**arrays, **{k: pa.array(v, pa.list_(pa.int32())) for k, v in extra.items()}})


def write_toy_sequences(root: Path) -> SequenceSet:
    """train (the last max_len + 1 events), calib (max_len events, the next item as target)."""
    rng = np.random.default_rng(0)
    starts = rng.integers(0, N_ITEMS, USERS)
    events = (starts[:, None] + np.arange(MAX_LEN + 3)[None, :]) % N_ITEMS + 1
    sources = rng.integers(1, 3, events.shape)
    for name in ("train", "calib", "eval"):
        (root / name).mkdir(parents=True)
    pq.write_table(
        _token_table(events[:, : MAX_LEN + 1], sources[:, : MAX_LEN + 1]), root / "train" / "part-0.parquet"
    )
    history, target = events[:, 1 : MAX_LEN + 1], events[:, MAX_LEN + 1]
    calib = _token_table(
        history, sources[:, 1 : MAX_LEN + 1], targets=[[t] for t in target], relistened=[[] for _ in target]
    )
    pq.write_table(calib, root / "calib" / "part-0.parquet")
    index = np.arange(N_ITEMS + 1)
    counts = np.bincount(events[:, 1 : MAX_LEN + 1].ravel(), minlength=N_ITEMS + 1)
    meta = {k: np.where(index > 0, v, 0) for k, v in _meta(index).items()}
    items = pa.table(
        {
            "item_index": pa.array(index, pa.int32()),
            "song_id": [None] + [f"s{i}" for i in index[1:]],
            "artist": pa.array(meta["artists"], pa.int32()),
            "genre": pa.array(meta["genres"], pa.int32()),
            "language": pa.array(meta["languages"], pa.int32()),
            "item_count": pa.array(counts, pa.int64()),
        }
    )
    (root / "items.parquet").mkdir()
    pq.write_table(items, root / "items.parquet" / "part-0.parquet")
    vocab = Vocab(
        items=N_ITEMS + 1,
        artists=6,
        genres=4,
        languages=2,
        sources=3,
        max_len=MAX_LEN,
        users=USERS,
        source_tokens=["a", "b"],
    )
    (root / VOCAB_FILE).write_text(json.dumps(vocab.to_dict()))
    return SequenceSet(str(root), vocab)


def toy_config(tmp: Path, *overrides: str) -> Config:
    settings = [
        f"models.root={tmp / 'models'}",
        f"retriever.max_len={MAX_LEN}",
        "retriever.hidden=16",
        "retriever.inner=32",
        "retriever.batch_size=16",
        "retriever.epochs=6",
        "retriever.dropout=0.1",
        "retriever.learning_rate=0.01",
        "retriever.uniform_negatives=8",
        "retriever.threads_per_process=1",
        *overrides,
    ]
    return load_config(None, settings)


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, RetrieverJob]:
    tmp = tmp_path_factory.mktemp("retriever")
    seqs = write_toy_sequences(tmp / "work")
    cfg = toy_config(tmp)
    return cfg, build_job(cfg, seqs, "test-run", {"data_source": "toy"})


def _in_process(job: RetrieverJob, tag: str, monkeypatch: pytest.MonkeyPatch, port: int) -> dict:
    """One rank in this process (no torchrun): RANK 0 of a world of 1."""
    return in_process(retriever_worker, job, tag, monkeypatch, port)


def _state(cfg: Config, version: str) -> dict[str, torch.Tensor]:
    folder = registry.resolve(cfg.models.root, RETRIEVER, version)
    return torch.load(folder / RETRIEVER_MODEL_FILE, weights_only=True)["state_dict"]


def test_training_learns_the_toy_world_and_is_deterministic(toy, monkeypatch) -> None:
    cfg, job = toy
    first = _in_process(job, "a", monkeypatch, 29561)
    again = _in_process(job, "b", monkeypatch, 29562)
    assert first["version"] != again["version"]
    a, b = _state(cfg, first["version"]), _state(cfg, again["version"])
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)  # same seed, same weights, bit for bit
    assert first["val_ndcg@10"] == again["val_ndcg@10"] > 0.5  # chance: about 0.1
    meta = registry.load_metadata(registry.resolve(cfg.models.root, RETRIEVER, first["version"]))
    history = meta["metrics"]["history"]
    assert [h["epoch"] for h in history] == list(range(meta["metrics"]["epochs_run"]))
    assert {"loss", "ndcg@10", "hr@10", "sequences_per_s", "seconds"} <= set(history[0])
    assert meta["metrics"]["val_ndcg@10"] == max(h["ndcg@10"] for h in history)
    assert (meta["backend"], meta["train_params"]["loss"], meta["hyper"]["n_items"]) == (
        "gloo",
        "sampled_logq",
        N_ITEMS,
    )
    assert meta["config"]["retriever"]["max_len"] == MAX_LEN


def test_capped_in_batch_negatives_still_learn_the_toy_world(tmp_path, monkeypatch) -> None:
    """32 in-batch draws of a batch's ~128 next items (plus 8 uniform): training still finds the
    toy world, and the job carries the cap."""
    cfg = toy_config(tmp_path, "retriever.in_batch_negatives=32")
    job = build_job(cfg, write_toy_sequences(tmp_path / "work"), "test-capped", {"data_source": "toy"})
    assert job.params.in_batch_negatives == 32
    assert _in_process(job, "capped", monkeypatch, 29565)["val_ndcg@10"] > 0.5  # chance: about 0.1


def test_recall_stopping_keeps_the_best_recall_epoch(tmp_path, monkeypatch) -> None:
    """``early_stopping_metric=recall@200``: every epoch logs recall@200 (per event: all 30 toy items
    fit in 200, so 1.0), and the first of the tied epochs is the best, not NDCG's best."""
    cfg = toy_config(tmp_path, "retriever.early_stopping_metric=recall@200", "retriever.epochs=3")
    job = build_job(cfg, write_toy_sequences(tmp_path / "work"), "test-recall", {"data_source": "toy"})
    result = _in_process(job, "recall", monkeypatch, 29567)
    meta = registry.load_metadata(registry.resolve(cfg.models.root, RETRIEVER, result["version"]))
    history = meta["metrics"]["history"]
    assert [h["recall@200"] for h in history] == [1.0, 1.0, 1.0]
    assert history[-1]["ndcg@10"] > history[0]["ndcg@10"]  # NDCG would have kept a later epoch
    assert (result["best_epoch"], meta["train_params"]["stop_on"]) == (0, "recall@200")
    assert result["val_ndcg@10"] == history[0]["ndcg@10"]
    assert result["val_recall@200"] == 1.0


def test_heard_masked_training_learns_the_toy_world(tmp_path, monkeypatch) -> None:
    """``mask_heard``: the positions' earlier items are no negatives; the next item still ranks high."""
    cfg = toy_config(tmp_path, "retriever.mask_heard=true", "retriever.exclude_heard=true")
    job = build_job(cfg, write_toy_sequences(tmp_path / "work"), "test-heard", {"data_source": "toy"})
    assert job.params.mask_heard
    assert job.params.exclude_heard
    assert _in_process(job, "heard", monkeypatch, 29568)["val_ndcg@10"] > 0.5  # chance: about 0.1


def test_window_targets_draw_among_the_coming_events() -> None:
    """Window 1 is the next item; window 3 draws each real position's target from the next 3
    events (every offset in turn), fewer at the row's end; seeded, so repeatable."""
    items = torch.tensor([[0, 0, 101, 102, 103, 104, 105, 106], [11, 12, 13, 14, 15, 16, 17, 18]])
    assert torch.equal(window_targets(items, 1, torch.Generator()), items[:, 1:])
    draws = torch.stack([window_targets(items, 3, torch.Generator().manual_seed(s)) for s in range(200)])
    offset = draws[:, 1] - items[1, :-1]  # the second row counts up by one
    for t in range(7):
        assert set(offset[:, t].tolist()) == set(range(1, min(3, 7 - t) + 1))
    real = draws[:, 0, 2:]  # the first row's real positions: their targets are real items
    assert bool((real > 100).all())
    again = window_targets(items, 3, torch.Generator().manual_seed(7))
    assert torch.equal(again, draws[7])


def test_window_training_still_learns_the_toy_world(tmp_path, monkeypatch) -> None:
    """Targets among the next 2 events: the toy world's next item still ranks high."""
    cfg = toy_config(tmp_path, "retriever.target_window=2")
    job = build_job(cfg, write_toy_sequences(tmp_path / "work"), "test-window", {"data_source": "toy"})
    assert job.params.target_window == 2
    assert _in_process(job, "window", monkeypatch, 29566)["val_ndcg@10"] > 0.3  # chance: about 0.1


def test_saved_version_serves_item_matrix_and_user_vectors(toy, monkeypatch) -> None:
    cfg, job = toy
    result = _in_process(
        replace(job, params=replace(job.params, epochs=4, loss="full")), "c", monkeypatch, 29563
    )
    model = load_retriever(cfg.models.root, result["version"])
    assert model is load_retriever(cfg.models.root, result["version"])  # cached per worker
    assert (model.version, model.metadata["metrics"]["epochs_run"]) == (
        result["version"],
        result["epochs_run"],
    )
    matrix = model.item_matrix()
    assert (matrix.shape, matrix.dtype) == ((N_ITEMS + 1, 17), np.float32)  # 16 + the item bias
    assert not matrix[0].any()
    assert model.items["item_index"].tolist() == list(range(N_ITEMS + 1))
    assert model.vocab.source_tokens == ["a", "b"]
    # a user who just heard items 4, 5, 6: item 7 ranks first
    seq = np.array([[0, 4, 5, 6]])
    tokens = [seq, seq % 5 + 1, seq % 3 + 1, np.ones_like(seq), np.ones_like(seq)]
    tokens = [np.where(seq > 0, t, 0) for t in tokens]
    users = model.user_vectors(*tokens)
    assert (users.shape, users.dtype) == ((1, 17), np.float32)
    scores = users @ matrix[1:].T
    assert int(np.argmax(scores)) + 1 == 7


def _add_refit_rows(seqs: SequenceSet) -> None:
    """A ``refit`` folder in which every user steps by two items (the toy world steps by one),
    and the item table's ``refit_count`` column."""
    rng = np.random.default_rng(1)
    events = (rng.integers(0, N_ITEMS, USERS)[:, None] + 2 * np.arange(MAX_LEN + 1)[None, :]) % N_ITEMS + 1
    Path(seqs.refit).mkdir()
    pq.write_table(_token_table(events, np.ones_like(events)), f"{seqs.refit}/part-0.parquet")
    items = pq.read_table(seqs.items)
    counts = np.bincount(events[:, 1:].ravel(), minlength=N_ITEMS + 1)
    pq.write_table(
        items.append_column("refit_count", pa.array(counts, pa.int64())), f"{seqs.items}/part-0.parquet"
    )


def test_refit_trains_the_best_epoch_count_on_the_refit_rows(tmp_path, monkeypatch) -> None:
    """The refit starts again on the ``refit`` rows for the validated run's best epoch count: the
    model learns their world (two items a step), reports the validated run's figures and names it."""
    cfg = toy_config(tmp_path)
    seqs = write_toy_sequences(tmp_path / "work")
    _add_refit_rows(seqs)
    job = build_job(cfg, seqs, "test-refit", {"data_source": "toy"})
    validated = _in_process(job, "validated", monkeypatch, 29569)
    refit = _in_process(refit_job(job, seqs, validated), "refit", monkeypatch, 29570)
    meta = registry.load_metadata(registry.resolve(cfg.models.root, RETRIEVER, refit["version"]))
    assert meta["refit_of"] == validated["version"]
    assert refit["epochs_run"] == refit["best_epoch"] + 1 == validated["best_epoch"] + 1
    assert "ndcg@10" not in meta["metrics"]["history"][0]  # no validation on rows it trains on
    assert all(refit[k] == validated[k] for k in ("val_ndcg@10", "val_hr@10", "val_recall@200"))
    model = load_retriever(cfg.models.root, refit["version"])
    seq = np.array([[4, 6, 8]])  # two items a step: 10 comes next in the refit world, 9 in the toy one
    tokens = [seq, seq % 5 + 1, seq % 3 + 1, np.ones_like(seq), np.ones_like(seq)]
    scores = model.user_vectors(*tokens) @ model.item_matrix()[1:].T
    assert int(np.argmax(scores)) + 1 == 10


@pytest.mark.slow
def test_torch_distributor_runs_the_ranks(spark, toy) -> None:
    cfg, job = toy
    result = train(replace(job, params=replace(job.params, epochs=2)), cfg)
    assert result["epochs_run"] == 2
    assert result["world_size"] == 1
    assert not Path(job.error_dir).exists()


@pytest.mark.slow
def test_two_processes_train_like_one(spark, toy) -> None:
    cfg, job = toy
    two = train(
        job, cfg.model_copy(update={"retriever": cfg.retriever.model_copy(update={"num_processes": 2})})
    )
    assert two["world_size"] == 2
    assert two["val_ndcg@10"] > 0.5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA GPU not available")
def test_gpu_rank_trains_one_epoch_with_nccl(toy, monkeypatch) -> None:
    cfg, job = toy
    result = _in_process(
        replace(job, use_gpu=True, params=replace(job.params, epochs=1)), "gpu", monkeypatch, 29564
    )
    meta = registry.load_metadata(registry.resolve(cfg.models.root, RETRIEVER, result["version"]))
    assert meta["backend"] == "nccl"
    assert result["epochs_run"] == 1


@pytest.mark.slow
def test_stage_trains_registers_and_evaluates(spark, tmp_path) -> None:
    from test_sequences import write_bronze

    from relisten_spark import lake
    from relisten_spark.retrieval.train import WORK_FOLDER, run

    cfg = load_config(
        None,
        [
            f"lake.root={tmp_path / 'lake'}",
            f"models.root={tmp_path / 'models'}",
            "retriever.max_len=3",
            "retriever.hidden=16",
            "retriever.inner=32",
            "retriever.epochs=2",
            "retriever.batch_size=4",
            "retriever.threads_per_process=1",
            "retriever.refit=true",
        ],
    )
    write_bronze(spark, cfg)
    summary = run(spark, cfg)
    assert summary["epochs_run"] <= 2
    refit = registry.load_metadata(registry.resolve(cfg.models.root, RETRIEVER, summary["version"]))
    assert refit["refit_of"] == summary["validated_version"] != summary["version"]
    assert not any((Path(cfg.models.root) / WORK_FOLDER).iterdir())  # the run's sequences are gone
    folder = registry.resolve(cfg.models.root, RETRIEVER, summary["version"])
    assert {p.name for p in folder.iterdir()} >= {RETRIEVER_MODEL_FILE, "items.parquet", "vocab.json"}
    metrics = lake.read(spark, lake.table_path(cfg.lake.root, "gold", "metrics")).where("model = 'retriever'")
    assert metrics.where("metric = 'ndcg@10'").count() == 1
    assert "retriever" in summary["evaluation"]["models"]
