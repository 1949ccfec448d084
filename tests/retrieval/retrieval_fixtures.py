"""Shared by the retrieval tests: a tiny hand-made log and a tiny (untrained) retriever version."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from relisten_spark import lake, runtime, schemas
from relisten_spark.config import Config, RetrieverConfig
from relisten_spark.retrieval.job import hyper_of
from relisten_spark.retrieval.model import Retriever
from relisten_spark.retrieval.sequences import VOCAB_FILE, SequenceSet
from relisten_spark.retrieval.worker import save_retriever

DISCOVER = ("discover", None, None)
LIBRARY = ("my library", "Local playlist more", "local-library")
# idx, msno, song_id, source, target; 20 train rows: fit 0..15, calib 16..17, eval 18..19 (holdout 0.2)
TRAIN = [
    (0, "u1", "s1", DISCOVER, 1),
    (1, "u2", "s1", LIBRARY, 0),
    (2, "u3", "s2", None, 1),
    (3, "u1", "s2", LIBRARY, 0),
    (4, "u2", "s2", None, 1),
    (5, "u5", "s9", None, 0),
    (6, "u1", "s3", None, 1),
    (7, "u2", "s4", None, 0),
    (8, "u2", "s5", None, 1),
    (9, "u1", "s4", DISCOVER, 0),
    (10, "u2", "s6", None, 1),
    (11, "u2", "s7", None, 0),
    (12, "u1", "s5", LIBRARY, 1),
    (13, "u2", "s8", None, 0),
    (14, "u2", "s9", None, 1),
    (15, "u1", "s6", DISCOVER, 0),
    (16, "u1", "s7", LIBRARY, 1),
    (17, "u3", "s1", None, 0),
    (18, "u1", "s8", DISCOVER, 0),
    (19, "u2", "s1", None, 1),
]
TEST = [(20, "u4", "s1", None, None), (21, "u1", "s9", None, None)]
SONGS = [
    ("s1", 200000, "10|20", "A", None, None, 3),
    ("s2", 200000, "20", "B", None, None, 3),
    ("s3", 200000, None, "A", None, None, None),
]


def write_bronze(spark: Any, cfg: Config) -> None:
    """The tiny log as bronze.events and bronze.songs, with members (ids only) and an empty
    song_extra: a complete bronze, as readers of the committed set expect."""
    rows = [
        (idx, msno, song, *(source or (None, None, None)), target, "train" if target is not None else "test")
        for idx, msno, song, source, target in TRAIN + TEST
    ]
    root = cfg.lake.root
    lake.write(spark, spark.createDataFrame(rows, schemas.EVENTS), lake.table_path(root, "bronze", "events"))
    songs = spark.createDataFrame(SONGS, schemas.SONGS)
    lake.write(spark, songs, lake.table_path(root, "bronze", "songs"))
    users = sorted({msno for _, msno, *_ in TRAIN + TEST})
    members = spark.createDataFrame([(u, *([None] * 6)) for u in users], schemas.MEMBERS)
    lake.write(spark, members, lake.table_path(root, "bronze", "members"))
    extra = spark.createDataFrame([], schemas.SONG_EXTRA)
    lake.write(spark, extra, lake.table_path(root, "bronze", "song_extra"))


def save_tiny_retriever(models_root: str, seqs: SequenceSet, seed: int = 0, hidden: int = 8) -> str:
    """A retriever version with seeded random weights over ``seqs``' vocabulary, saved in the
    registry the way training saves one; its version string."""
    hyper = hyper_of(RetrieverConfig(hidden=hidden, layers=1, heads=1, inner=16, dropout=0.0), seqs)
    items = pd.read_parquet(seqs.items).sort_values("item_index")
    meta = torch.as_tensor(np.stack([items[c].to_numpy() for c in ("artist", "genre", "language")], axis=1))
    torch.manual_seed(seed)
    model = Retriever(hyper, meta)
    vocab = Path(seqs.root) / VOCAB_FILE
    return save_retriever(models_root, model, seqs.items, vocab, {"model": runtime.RETRIEVER, "stage": 1})


def in_process(
    worker: Callable[[Any], str], job: Any, tag: str, monkeypatch: pytest.MonkeyPatch, port: int
) -> dict[str, Any]:
    """``worker(job)`` as one rank in this process (no torchrun): RANK 0 of a world of 1; its
    result."""
    env = {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "LOCAL_WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    job = replace(job, error_dir=f"{job.error_dir}-{tag}")
    Path(job.error_dir).mkdir(parents=True)
    threads = torch.get_num_threads()
    try:
        return dict(json.loads(worker(job)))
    finally:
        torch.set_num_threads(threads)
