"""train-nets end to end on a small planted-signal lake: DDP on Spark, determinism, failures."""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from pyspark.sql import functions as F
from pyspark.sql import types as T
from sklearn.metrics import roc_auc_score

from relisten_spark import lake, schemas
from relisten_spark.config import Config, NetsConfig, load_config
from relisten_spark.errors import InputError, TrainingError
from relisten_spark.evaluation import evaluate
from relisten_spark.models import registry
from relisten_spark.models.ddp import stage
from relisten_spark.models.ddp.inputs import prepare_inputs, read_shards, row_groups, work_folder
from relisten_spark.models.ddp.job import TrainJob, build_job, train_params
from relisten_spark.models.ddp.launch import launch
from relisten_spark.models.ddp.worker import train_worker
from relisten_spark.predictions import read_predictions

pytestmark = [pytest.mark.spark, pytest.mark.torch]

USERS, SONGS, ARTISTS, GENRES, TYPES, CITIES, DIM = 60, 150, 20, 8, 5, 4, 4

# (name, family, entity, cardinality) of the categorical inputs; NUMERIC: (name, family, entity)
CATEGORICAL = [
    ("msno_code", "ids", "user", USERS),
    ("city", "member", "user", CITIES),
    ("artist_name", "song", "song", ARTISTS),
    ("first_genre_id", "song", "song", GENRES),
    ("second_genre_id", "song", "song", GENRES),
    ("song_code", "ids", "song", SONGS),
    ("before_song_code", "neighbors", "context", SONGS),
    ("source_type", "ids", "context", TYPES - 1),  # the last type is unseen by the encoder
]
NUMERIC = [
    ("bd", "member", "user"),
    ("msno_rec_cnt", "popularity", "user"),
    ("song_length", "song", "song"),
    ("song_rec_cnt", "popularity", "song"),
    ("timestamp", "timeline", "context"),
    ("msno_source_type_prob", "source_profile", "context"),
    *[(f"member_component_{j}", "svd_user", "user") for j in range(DIM)],
    *[(f"song_component_{j}", "svd_song", "song") for j in range(DIM)],
    *[(f"before_song_component_{j}", "previous_song", "context") for j in range(DIM)],
    *[(f"member_artist_component_{j}", "svd_user", "user") for j in range(2)],
    *[(f"artist_component_{j}", "svd_song", "song") for j in range(2)],
]
FILLS = {"song_length": "song_mean", "msno_rec_cnt": "zero"}  # the others: "mean"
NOTES = {"song_length": "log1p(ms)", "msno_rec_cnt": "log1p"}
GBDT_ONLY = ("song_embeddings_dot", "svd_dots", "context")


def planted_events(n_train: int, n_test: int, seed: int) -> pd.DataFrame:
    """Events with a known signal: user x song factors, popularity, source type, a context value."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    user_vec = rng.normal(size=(USERS, DIM)) / math.sqrt(DIM)
    song_vec = rng.normal(size=(SONGS, DIM)) / math.sqrt(DIM)
    popularity = 1.0 / np.arange(1, SONGS + 1) ** 0.8
    users = rng.integers(0, USERS, n)
    songs = rng.choice(SONGS, n, p=popularity / popularity.sum())
    types = rng.integers(0, TYPES, n)
    context = rng.normal(size=n)
    type_effect = np.linspace(-1.0, 1.0, TYPES)
    logit = 3.0 * (user_vec[users] * song_vec[songs]).sum(1) + type_effect[types] + 0.8 * context
    logit += 0.3 * np.log(popularity[songs] / popularity.mean())
    target = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int32")
    frame = pd.DataFrame(
        {
            "idx": np.arange(n, dtype="int64"),
            "msno": [f"u{u}" for u in users],
            "song_id": [f"s{s}" for s in songs],
            "split": np.where(np.arange(n) < n_train, "train", "test"),
            "target": pd.array(np.where(np.arange(n) < n_train, target, -1), dtype="Int32"),
            "msno_code": users.astype("int32"),
            "city": (users % CITIES).astype("int32"),
            "artist_name": (songs % ARTISTS).astype("int32"),
            "first_genre_id": (songs % GENRES).astype("int32"),
            "second_genre_id": ((songs // GENRES) % GENRES).astype("int32"),
            "song_code": songs.astype("int32"),
            "before_song_code": np.roll(songs, 1).astype("int32"),
            "source_type": types.astype("int32"),
            "bd": (20 + users % 30).astype("float64"),
            "msno_rec_cnt": np.log1p(np.bincount(users, minlength=USERS)[users]).astype("float64"),
            "song_length": np.where(rng.random(n) < 0.05, np.nan, 2.0e5 + 1.0e3 * songs),
            "song_rec_cnt": np.log1p(np.bincount(songs, minlength=SONGS)[songs]).astype("float64"),
            "timestamp": 1.4712e9 + 1800.0 * np.arange(n),
            "msno_source_type_prob": context,
            "song_embeddings_dot": rng.normal(size=n),
        }
    )
    frame.loc[frame["split"] == "test", "target"] = pd.NA
    for j in range(DIM):
        frame[f"member_component_{j}"] = user_vec[users, j].astype("float32")
        frame[f"song_component_{j}"] = song_vec[songs, j].astype("float32")
        frame[f"before_song_component_{j}"] = np.roll(song_vec[songs, j], 1).astype("float32")
    artist_vec = rng.normal(size=(ARTISTS, 2)) / math.sqrt(2)
    user_artist = rng.normal(size=(USERS, 2)) / math.sqrt(2)
    for j in range(2):
        frame[f"member_artist_component_{j}"] = user_artist[users, j].astype("float32")
        frame[f"artist_component_{j}"] = artist_vec[songs % ARTISTS, j].astype("float32")
    return frame


def _features_schema(frame: pd.DataFrame) -> T.StructType:
    kinds = {"int64": T.LongType(), "int32": T.IntegerType(), "Int32": T.IntegerType()}
    kinds |= {"float64": T.DoubleType(), "float32": T.FloatType(), "object": T.StringType()}
    return T.StructType([T.StructField(c, kinds[str(frame[c].dtype)], True) for c in frame.columns])


def _component(name: str) -> int | None:
    """The SVD component index of a ``*_component_<j>`` column."""
    return int(name.rsplit("_", 1)[1]) if "_component_" in name else None


def manifest_rows(profile: str) -> list[tuple]:
    rows = [
        (name, family, "int", "STATIC", profile, entity, True, card, True, True, None, None, None)
        for name, family, entity, card in CATEGORICAL
    ]
    for n, f, e in NUMERIC:
        fill = FILLS.get(n, "mean")
        rows.append(
            (n, f, "double", "BATCH", profile, e, False, None, True, True, NOTES.get(n), fill, _component(n))
        )
    name, family, entity = GBDT_ONLY
    rows.append((name, family, "double", "BATCH", profile, entity, False, None, True, False, *[None] * 3))
    return rows


def write_feature_tables(spark, cfg: Config, n_train: int = 3000, n_test: int = 500, seed: int = 0) -> None:
    """silver.features + silver.feature_manifest for both profiles, as the feature job writes them."""
    frame = planted_events(n_train, n_test, seed)
    schema = _features_schema(frame)
    frame["target"] = frame["target"].astype(object).where(frame["target"].notna(), None)
    df = spark.createDataFrame(frame, schema)
    both = df.withColumn("profile", F.lit("full")).unionByName(df.withColumn("profile", F.lit("serving")))
    lake.write(spark, both, lake.table_path(cfg.lake.root, "silver", "features"), partition_by=["profile"])
    manifest = spark.createDataFrame(manifest_rows("full") + manifest_rows("serving"), schemas.MANIFEST)
    lake.write(
        spark,
        manifest,
        lake.table_path(cfg.lake.root, "silver", "feature_manifest"),
        partition_by=["profile"],
    )


def fast_cfg(tmp_lake: Config, **nets) -> Config:
    settings = {"num_processes": 1, "epochs": 3, "batch_size": 256, "row_group_rows": 256, **nets}
    settings.setdefault("threads_per_process", 1)  # other processes share these 2 cores
    return tmp_lake.model_copy(update={"nets": tmp_lake.nets.model_copy(update=settings)})


@pytest.fixture(scope="module")
def lake_cfg(spark, tmp_path_factory) -> Config:
    root = tmp_path_factory.mktemp("nets")
    overrides = [f"lake.root={root / 'lake'}", f"models.root={root / 'models'}", "tracking.enabled=false"]
    cfg = load_config(None, overrides)
    write_feature_tables(spark, cfg)
    return cfg


@pytest.fixture(scope="module")
def prepared(spark, lake_cfg):
    return prepare_inputs(spark, fast_cfg(lake_cfg), "full", work_folder(lake_cfg, "test-prepare"))


def test_prepare_materialises_inputs_with_fit_statistics(spark, lake_cfg, prepared) -> None:
    shards = Path(prepared.path)  # a training artifact in the model store, not a lake table
    assert shards == Path(lake_cfg.models.root).absolute() / ".nets-work" / "test-prepare" / "inputs"
    assert [p.name for p in shards.parent.iterdir()] == ["inputs"]  # the staging folder was renamed
    assert not (Path(lake_cfg.lake.root) / "silver" / "nets_input_full").exists()
    table = read_shards(spark, prepared)
    expected = {"idx", "msno", "song_id", "target", "eval_split"} | set(prepared.inputs.numeric_names)
    assert expected | set(prepared.inputs.categorical_names) == set(table.columns)
    assert "song_embeddings_dot" not in table.columns  # in_gbdt only
    assert prepared.rows == {"all": 3500, "fit": 2400, "calib": 300}
    frame = planted_events(3000, 500, 0).iloc[:2400]
    assert prepared.positive_rate == pytest.approx(frame["target"].astype(float).mean())
    stats = prepared.stats.to_dict()
    assert stats["timestamp"]["mean"] == pytest.approx(frame["timestamp"].mean(), rel=1e-12)
    assert stats["timestamp"]["std"] == pytest.approx(frame["timestamp"].std(ddof=0), rel=1e-9)
    song_mean = frame.groupby("song_id")["song_length"].mean().mean()  # over distinct songs
    filled = frame["song_length"].fillna(song_mean)
    assert frame["song_length"].isna().sum() > 50
    assert stats["song_length"]["fill"] == pytest.approx(song_mean, rel=1e-12)
    assert stats["song_length"]["mean"] == pytest.approx(filled.mean(), rel=1e-12)
    assert stats["song_length"]["std"] == pytest.approx(filled.std(ddof=0), rel=1e-9)
    assert stats["msno_rec_cnt"]["fill"] == 0.0
    groups = row_groups(prepared, "fit")
    assert sum(g.rows for g in groups) == 2400
    assert len(groups) > 2  # row groups sized for streaming, not one per file
    counts = {r.eval_split: r["count"] for r in table.groupBy("eval_split").count().collect()}
    assert counts == {"fit": 2400, "calib": 300, "eval": 300, "test": 500}


def test_missing_feature_column_names_it(spark, tmp_lake) -> None:
    cfg = fast_cfg(tmp_lake)
    write_feature_tables(spark, cfg, n_train=200, n_test=20)
    extra = spark.createDataFrame(
        [
            (
                "ghost_feature",
                "x",
                "double",
                "ROW",
                "full",
                "context",
                False,
                None,
                False,
                True,
                None,
                "mean",
                None,
            )
        ],
        schemas.MANIFEST,
    )
    lake.write(
        spark,
        extra,
        lake.table_path(cfg.lake.root, "silver", "feature_manifest"),
        mode="append",
        partition_by=["profile"],
    )
    with pytest.raises(InputError, match="ghost_feature"):
        prepare_inputs(spark, cfg, "full", work_folder(cfg, "test-missing"))


def test_presets_follow_the_thesis_and_config_overrides() -> None:
    jenn = train_params(NetsConfig(preset="thesis"), "jenn", positive_rate=0.2)
    assert (jenn.epochs, jenn.batch_size, jenn.optimizer, jenn.patience) == (40, 8192, "adam", 3)
    assert (jenn.lr0, jenn.decay, jenn.hyper.l2_embedding) == (0.001405365, 0.778385, 5.315258e-4)
    assert (jenn.hyper.k_user, jenn.hyper.k_cat, jenn.hyper.activation) == (74, 11, "elu")
    assert jenn.class_weights is None  # the thesis code trained without class weights
    text = NetsConfig(preset="thesis", class_weights=True, activation="relu", hidden=2048, learning_rate=0.01)
    variant = train_params(text, "felu_net", positive_rate=0.2)
    assert variant.class_weights == pytest.approx((0.625, 2.5))  # n / (2 n_y)
    assert (variant.hyper.activation, variant.hyper.hidden, variant.lr0) == ("relu", 2048, 0.01)
    assert (variant.epochs, variant.patience, variant.optimizer) == (26, 0, "rmsprop")


def _job(lake_cfg, prepared, tag: str, **nets):
    cfg = fast_cfg(lake_cfg, **nets)
    return cfg, build_job(cfg, prepared, f"test-{tag}")


def _again(job: TrainJob, tag: str) -> TrainJob:
    return replace(job, error_dir=f"{job.error_dir}-{tag}")


@pytest.fixture(scope="module")
def jenn_job(lake_cfg, prepared):
    """JENN, 4 fixed epochs, batch 256 (global), one thread per process."""
    return _job(lake_cfg, prepared, "jenn", models=["jenn"], epochs=4, early_stopping_patience=0)


@pytest.fixture(scope="module")
def one_process(jenn_job):
    return launch(jenn_job[1], 1, True, False)["jenn"]


def test_single_process_training_is_saved_with_metadata(jenn_job, one_process, prepared) -> None:
    cfg, _ = jenn_job
    meta = registry.load_metadata(registry.resolve(cfg.models.root, "jenn", one_process["version"]))
    assert meta["metrics"]["epochs_run"] == 4
    assert [h["epoch"] for h in meta["metrics"]["history"]] == [0, 1, 2, 3]
    assert meta["metrics"]["val_auc"] == one_process["val_auc"] > 0.75
    assert meta["architecture"]["kind"] == "jenn"
    assert meta["backend"] == "gloo"
    assert meta["train_params"]["optimizer"] == "adam"
    assert set(meta["standardization"]) == set(prepared.inputs.numeric_names)
    assert meta["profile"] == "full"


@pytest.mark.slow
def test_fixed_seed_gives_the_same_validation_auc(jenn_job, one_process) -> None:
    again = launch(_again(jenn_job[1], "again"), 1, True, False)["jenn"]
    assert abs(one_process["val_auc"] - again["val_auc"]) < 1e-4
    assert again["version"] != one_process["version"]


@pytest.mark.slow
def test_two_processes_match_one_process(jenn_job, one_process) -> None:
    two = launch(_again(jenn_job[1], "two"), 2, True, False)["jenn"]
    assert two["world_size"] == 2
    assert one_process["world_size"] == 1
    assert abs(one_process["val_auc"] - two["val_auc"]) < 0.01


@pytest.mark.slow
def test_barrier_mode_trains_like_local_mode(jenn_job) -> None:
    local = launch(_again(jenn_job[1], "local2"), 2, True, False)["jenn"]
    barrier = launch(_again(jenn_job[1], "barrier2"), 2, False, False)["jenn"]
    assert barrier["val_auc"] == pytest.approx(local["val_auc"], abs=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA GPU not available")
def test_gpu_rank_trains_with_nccl(jenn_job, monkeypatch) -> None:
    cfg, job = jenn_job
    job = replace(_again(job, "gpu"), use_gpu=True)
    env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"}
    for key, value in {**env, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29517"}.items():
        monkeypatch.setenv(key, value)
    Path(job.error_dir).mkdir(parents=True)
    result = json.loads(train_worker(job))["jenn"]
    meta = registry.load_metadata(registry.resolve(cfg.models.root, "jenn", result["version"]))
    assert meta["backend"] == "nccl"
    assert result["val_auc"] > 0.75


def test_failing_rank_ends_the_job_with_its_error(lake_cfg, prepared) -> None:
    _, job = _job(lake_cfg, prepared, "fail", models=["jenn"], epochs=2)
    victim = job.fit[-1].path  # storage loses one file: only the ranks reading it fail
    gone = tuple(replace(g, path=g.path + ".gone") if g.path == victim else g for g in job.fit)
    broken = replace(job, fit=gone)
    started = time.monotonic()
    with pytest.raises(TrainingError, match=r"rank \d failed while training jenn epoch 0: FileNotFoundError"):
        launch(broken, 2, True, False)
    assert time.monotonic() - started < 90
    assert not Path(job.error_dir).exists()


@pytest.mark.slow
def test_run_trains_both_nets_and_writes_predictions(spark, lake_cfg) -> None:
    cfg = fast_cfg(lake_cfg, epochs=None, batch_size=None, profile="serving")
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"raw_dir": str(lake_cfg.lake.root)})})
    summary = stage.run(spark, cfg)
    assert summary["profile"] == "serving"
    assert not (Path(cfg.models.root).absolute() / ".nets-work" / summary["run_id"]).exists()  # cleaned up
    assert not (Path(cfg.lake.root) / "silver" / "nets_input_serving").exists()
    preds = read_predictions(spark, cfg, profile="serving").toPandas()
    assert set(preds["model"]) == {"jenn", "felu_net"}
    for kind in ("jenn", "felu_net"):
        rows = preds[preds["model"] == kind]
        assert rows["model_version"].unique().tolist() == [summary[kind]["version"]]
        counts = sorted(rows["eval_split"].value_counts().items())
        assert counts == [("calib", 300), ("eval", 300), ("test", 500)]
        assert rows["score"].between(0, 1).all()
        assert set(rows["split_mode"]) == {"time"}
        holdout = rows[rows["eval_split"] == "eval"]
        pop = planted_events(3000, 500, 0).iloc[:2400]["song_id"].value_counts()
        baseline = roc_auc_score(holdout["target"], holdout["song_id"].map(pop).fillna(0))
        assert roc_auc_score(holdout["target"], holdout["score"]) > baseline + 0.05
    evaluate.run(spark, cfg)  # the evaluate stage reads the nets' predictions like LightGBM's
    metrics = lake.read(spark, evaluate.metrics_path(cfg)).where("split = 'eval' AND metric = 'roc_auc'")
    assert sorted((r.model, r.profile) for r in metrics.collect()) == [
        ("felu_net", "serving"),
        ("jenn", "serving"),
        ("popularity", "serving"),  # evaluate trains the baseline of every profile it evaluates
    ]
