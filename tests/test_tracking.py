"""MLflow tracking: runs, registered models with their lineage, models loaded back through MLflow
and scoring like the engine, tracking off, a misconfigured store stopping a stage first."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from relisten_spark import lake, tracking
from relisten_spark.config import Config, load_config
from relisten_spark.errors import ConfigError
from relisten_spark.models import registry
from relisten_spark.runtime import LIGHTGBM, LIGHTGBM_MODEL_FILE, STACK

FEATURES = ["f0", "f1", "f2", "f3"]


def _cfg(root: Path, *overrides: str) -> Config:
    return load_config(
        None,
        [
            "spark.master=local[2]",
            f"lake.root={root / 'lake'}",
            f"models.root={root / 'models'}",
            f"data.raw_dir={root / 'raw'}",
            "tracking.experiment=tests",
            *overrides,
        ],
    )


@pytest.fixture(scope="module")
def tracked(tmp_path_factory) -> Config:
    """A config tracking to the embedded store of its own lake (created once: seconds)."""
    return _cfg(tmp_path_factory.mktemp("tracked"))


def _booster(seed: int = 0):
    import lightgbm as lgb

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, len(FEATURES)))
    y = (x[:, 0] - x[:, 1] + rng.normal(scale=0.7, size=400) > 0).astype(int)
    params = {"objective": "binary", "num_leaves": 5, "min_data_in_leaf": 5, "verbose": -1}
    return lgb.train(params, lgb.Dataset(x, y, feature_name=FEATURES), num_boost_round=10)


def _frame(seed: int = 1) -> pd.DataFrame:
    x = np.random.default_rng(seed).normal(size=(50, len(FEATURES)))
    x[::7, 2] = np.nan  # missing values travel as NaN
    return pd.DataFrame(x, columns=FEATURES)


def test_default_store_is_sqlite_under_the_lake(tmp_path) -> None:
    cfg = _cfg(tmp_path)
    assert tracking.store_uri(cfg) == f"sqlite:///{(tmp_path / 'lake' / 'mlflow' / 'mlflow.db').resolve()}"
    assert tracking.artifact_location(cfg) == (tmp_path / "lake" / "mlflow" / "artifacts").resolve().as_uri()
    remote = _cfg(tmp_path, "lake.root=dbfs:/lake")
    with pytest.raises(ConfigError, match=r"tracking\.uri must be set"):
        tracking.store_uri(remote)
    databricks = _cfg(tmp_path, "tracking.uri=databricks", "tracking.registry_uri=databricks-uc")
    assert tracking.store_uri(databricks) == "databricks"
    assert tracking.artifact_location(databricks) is None  # the workspace's own


def test_registered_models_load_back_through_mlflow_and_score_like_the_engine(tracked) -> None:
    """A LightGBM version and a stack over it, logged and registered as train-gbdt and
    train-stack do; both load back by name and score a frame as the engine's scoring path."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from relisten_spark.models.stack_pyfunc import StackModel
    from relisten_spark.scoring import rank

    root = tracked.models.root
    booster = _booster()
    lgb_version = registry.save_model(
        root,
        LIGHTGBM,
        lambda f: booster.save_model(str(f / LIGHTGBM_MODEL_FILE)),
        {"features": FEATURES, "profile": "full"},
    )
    stack_meta = {"profile": "full", "base_models": {LIGHTGBM: lgb_version}, "weights": {LIGHTGBM: 1.3}}
    stack_version = registry.save_model(root, STACK, lambda f: None, {**stack_meta, "intercept": -0.2})
    tracker = tracking.open_tracker(tracked)
    columns = [(c, "double") for c in FEATURES]
    gbdt = tracker.log(
        tracking.StageLog(
            "train-gbdt",
            "train-gbdt-1",
            params={"parameters": {"num_leaves": 5}, "profile": "full"},
            metrics={"eval": {"roc_auc": 0.71, "note": "text is no metric"}, "rows": {"fit": 400}},
            seconds={"training": 1.5},
            input_versions={"silver.features": 3, "silver.feature_manifest": 1},
            features=FEATURES,
            models=[tracking.ModelLog(LIGHTGBM, "lightgbm", lambda: booster, lgb_version, "full", columns)],
        )
    )
    folder = str(registry.resolve(root, LIGHTGBM, lgb_version))
    stack = tracker.log(
        tracking.StageLog(
            "train-stack",
            "train-stack-1",
            models=[
                tracking.ModelLog(
                    STACK,
                    "pyfunc",
                    lambda: StackModel({LIGHTGBM: 1.3}, -0.2),
                    stack_version,
                    "full",
                    columns,
                    parents={LIGHTGBM: lgb_version},
                    artifacts={LIGHTGBM: folder},
                )
            ],
        )
    )
    assert gbdt["models"] == {LIGHTGBM: "relisten_lightgbm/1"}
    assert stack["models"] == {STACK: "relisten_stack/1"}

    client = MlflowClient()
    run = client.get_run(gbdt["run_id"])
    assert run.info.run_name == "train-gbdt-1"
    assert run.data.params["parameters.num_leaves"] == "5"
    assert run.data.params["input.silver.features"] == "3"
    assert run.data.params["features.count"] == "4"
    assert run.data.metrics == {"eval.roc_auc": 0.71, "rows.fit": 400.0, "seconds.training": 1.5}
    assert run.data.tags["relisten.command"] == "train-gbdt"
    assert json.loads(mlflow.artifacts.load_text(f"runs:/{gbdt['run_id']}/features.json")) == {
        "features": FEATURES
    }
    lgb_mv = client.get_model_version_by_alias("relisten_lightgbm", "full")
    assert str(lgb_mv.version) == "1"
    assert lgb_mv.tags["engine_version"] == lgb_version
    assert lgb_mv.tags["engine_run_id"] == "train-gbdt-1"
    stack_mv = client.get_model_version("relisten_stack", "1")
    assert json.loads(stack_mv.tags["parents"]) == {LIGHTGBM: "relisten_lightgbm/1"}
    assert json.loads(stack_mv.tags["parent_engine_versions"]) == {LIGHTGBM: lgb_version}
    assert tracker.registered_versions({LIGHTGBM: lgb_version, STACK: "never-registered"}) == {
        LIGHTGBM: "relisten_lightgbm/1"
    }

    frame = _frame()
    got_lgb = mlflow.pyfunc.load_model("models:/relisten_lightgbm/1").predict(frame)
    np.testing.assert_allclose(np.asarray(got_lgb), booster.predict(frame.to_numpy()), rtol=0, atol=1e-12)
    ens = rank.load_ensemble(root, "full")  # the engine's scoring path
    table = pa.Table.from_pandas(frame, preserve_index=False)
    x = frame.to_numpy(dtype=np.float64)
    want = rank.stack_probability(ens, rank.base_logits(ens, table, x))
    got = mlflow.pyfunc.load_model("models:/relisten_stack@full").predict(frame)
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=1e-12)


def test_a_misconfigured_store_stops_the_stage_before_its_work(tmp_path) -> None:
    """One line naming tracking.uri, raised before train-gbdt looks for its inputs (there are none)."""
    from relisten_spark.models.gbdt import stage

    cfg = _cfg(tmp_path, "tracking.uri=nosuchscheme://nowhere")
    with pytest.raises(ConfigError) as err:
        stage.run(None, cfg)  # type: ignore[arg-type]  # never reaches Spark
    message = str(err.value)
    assert "tracking.uri=nosuchscheme://nowhere" in message
    assert "\n" not in message


@pytest.mark.spark
def test_tracking_off_logs_nothing(spark, tmp_path) -> None:
    """train-stack with tracking.enabled false: no store, no MLflow run, no mlflow import needed."""
    from relisten_spark.models import stack
    from relisten_spark.predictions import write_predictions

    cfg = _cfg(tmp_path, "tracking.enabled=false", "stack.models=[lightgbm]")
    assert not tracking.open_tracker(cfg).enabled
    splits = ["calib"] * 30 + ["eval"] * 30
    rows = [(i, f"u{i % 5}", f"s{i}", s, "time", i % 2, 0.3 + 0.4 * (i % 2)) for i, s in enumerate(splits)]
    schema = "idx long, msno string, song_id string, eval_split string, split_mode string, target int"
    preds = spark.createDataFrame(rows, f"{schema}, score double")
    write_predictions(spark, cfg, preds, LIGHTGBM, "v1", "serving", "r1")

    summary = stack.run(spark, cfg)

    assert summary["mlflow"] == {}
    assert not (Path(cfg.lake.root) / tracking.STORE_FOLDER).exists()


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.torch
def test_training_stages_log_runs_and_models_that_score_like_their_predictions(spark, tmp_path) -> None:
    """train-gbdt, train-nets (JENN) and train-stack with tracking on: each logs a run and
    registers its model; LightGBM (pyfunc), JENN (PyTorch flavour) and the stack (pyfunc) loaded
    back by name reproduce the scores they wrote to gold.predictions; evaluate logs the report."""
    import mlflow
    from mlflow.tracking import MlflowClient

    sys.path.insert(0, str(Path(__file__).parent / "models"))
    from test_ddp import write_feature_tables

    from relisten_spark.evaluation import evaluate
    from relisten_spark.models import nets, shards, stack
    from relisten_spark.models.ddp import stage as nets_stage
    from relisten_spark.models.feature_inputs import features_path
    from relisten_spark.models.gbdt import stage as gbdt_stage
    from relisten_spark.predictions import read_predictions

    cfg = _cfg(
        tmp_path,
        "gbdt.num_boost_round=20",
        "nets.models=[jenn]",
        "nets.num_processes=1",
        "nets.epochs=1",
        "nets.threads_per_process=1",
        "stack.models=[lightgbm, jenn]",
        "stack.profile=full",
    )
    write_feature_tables(spark, cfg, n_train=1500, n_test=200)
    gbdt = gbdt_stage.run(spark, cfg)
    net = nets_stage.run(spark, cfg)
    stacked = stack.run(spark, cfg)
    evaluated = evaluate.run(spark, cfg)

    assert gbdt["mlflow"]["models"] == {"lightgbm": "relisten_lightgbm/1"}
    assert net["mlflow"]["models"] == {"jenn": "relisten_jenn/1"}
    assert stacked["mlflow"]["models"] == {"stack": "relisten_stack/1"}
    client = MlflowClient()
    gbdt_run = client.get_run(gbdt["mlflow"]["run_id"])
    assert gbdt_run.data.params["input.silver.features"] == str(gbdt["input_versions"]["silver.features"])
    assert "input.silver.feature_manifest" in gbdt_run.data.params
    assert {"eval.roc_auc", "calib.roc_auc", "seconds.training"} <= set(gbdt_run.data.metrics)
    assert "jenn.eval.roc_auc" in client.get_run(net["mlflow"]["run_id"]).data.metrics
    parents = json.loads(client.get_model_version("relisten_stack", "1").tags["parents"])
    assert parents == {"lightgbm": "relisten_lightgbm/1", "jenn": "relisten_jenn/1"}
    eval_run = client.get_run(evaluated["mlflow"]["run_id"])
    assert "lightgbm.full.eval.roc_auc" in eval_run.data.metrics
    artifacts = [a.path for a in client.list_artifacts(eval_run.info.run_id)]
    assert Path(evaluated["report"]).name in artifacts

    holdout = lake.read(spark, features_path(cfg), where={"profile": "full"}).toPandas().set_index("idx")
    preds = read_predictions(spark, cfg, profile="full").where("eval_split = 'eval'").toPandas()
    scored = {m: g.set_index("idx")["score"] for m, g in preds.groupby("model")}
    columns = [c for c in holdout.columns if c not in ("msno", "song_id", "split", "target", "profile")]
    frame = holdout.loc[scored["stack"].index, columns].astype("float64")

    lgb_model = mlflow.pyfunc.load_model("models:/relisten_lightgbm@full")
    got = lgb_model.predict(frame[lgb_model.metadata.get_input_schema().input_names()])
    np.testing.assert_allclose(np.asarray(got), scored["lightgbm"].loc[frame.index], atol=1e-9)
    jenn = mlflow.pytorch.load_model("models:/relisten_jenn/1")
    table = pa.Table.from_pandas(holdout.loc[frame.index], preserve_index=False)
    cat, num = shards.to_arrays(table, jenn.inputs.categorical_names, jenn.inputs.numeric_names)
    np.testing.assert_allclose(nets.predict(jenn, cat, num), scored["jenn"].loc[frame.index], atol=1e-6)
    stack_model = mlflow.pyfunc.load_model("models:/relisten_stack/1")
    got = stack_model.predict(frame[stack_model.metadata.get_input_schema().input_names()])
    np.testing.assert_allclose(np.asarray(got), scored["stack"].loc[frame.index], atol=1e-6)
