"""MLflow tracking: each stage's run in an MLflow experiment, its models in the MLflow registry.

The engine's own registry (``<models.root>/<name>/<version>/``) and ``gold.runs`` stay the
contract the stages read; MLflow is the view people already use over them (``tracking.*``):

* :func:`open_tracker`, at the start of a stage, checks the tracking store and the registry
  (a misconfigured ``tracking.uri`` is a one-line :class:`ConfigError` before any work) and
  returns a :class:`Tracker`; with ``tracking.enabled: false`` it imports nothing and the
  tracker logs nothing.
* :meth:`Tracker.log`, at the end of the stage, writes one MLflow run from a :class:`StageLog`:
  parameters, metrics (nested mappings flattened to ``eval.roc_auc``-style keys), the input
  tables' Delta versions (params ``input.<table>``), the feature list (``features.json``),
  JSON and file artifacts, and each :class:`ModelLog` as an MLflow model of its flavour
  (``lightgbm``, ``pytorch``, or a ``pyfunc``), registered as ``<registered_model_prefix><name>``.
  A registered version carries its lineage as tags (``engine_version``: the engine registry's
  version, ``engine_run_id``, ``profile``, ``parents``: the registered versions it was built
  from) and the alias ``<profile>`` points at the newest version of each profile.

The embedded default is a SQLite store under the lake, ``sqlite:///<lake.root>/mlflow/mlflow.db``
with artifacts in ``<lake.root>/mlflow/artifacts`` (MLflow's file store is in maintenance mode
and refuses to start without an opt-out; SQLite is its supported local backend). On Databricks
``tracking.uri: databricks`` and ``tracking.registry_uri: databricks-uc`` use the workspace's
server and Unity Catalog.

mlflow is imported only when a tracker is opened enabled, so the command line stays fast.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from relisten_spark.config import Config, TrackingConfig
from relisten_spark.errors import ConfigError

log = logging.getLogger(__name__)

STORE_FOLDER = "mlflow"
_PARAMS_PER_CALL = 100  # MLflow's log_batch limit
_PARAM_CHARS = 6000

Flavour = Literal["lightgbm", "pytorch", "pyfunc"]


def _is_local(root: str) -> bool:
    return "://" not in root and not root.startswith("dbfs:")


def store_uri(cfg: Config) -> str:
    """``tracking.uri``, or the SQLite store under a local ``lake.root``."""
    if cfg.tracking.uri:
        return cfg.tracking.uri
    if not _is_local(cfg.lake.root):
        raise ConfigError(f"tracking.uri must be set when lake.root ({cfg.lake.root}) is not a local folder")
    return f"sqlite:///{Path(cfg.lake.root).resolve() / STORE_FOLDER / 'mlflow.db'}"


def artifact_location(cfg: Config) -> str | None:
    """Artifact root of a new experiment: ``tracking.artifact_location``, the lake's folder for the
    embedded store, else None (the tracking server's default)."""
    if cfg.tracking.artifact_location or cfg.tracking.uri:
        return cfg.tracking.artifact_location
    return (Path(cfg.lake.root).resolve() / STORE_FOLDER / "artifacts").as_uri()


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``{"a.b": leaf}``.

    >>> flatten({"eval": {"roc_auc": 0.7}, "rows": 3})
    {'eval.roc_auc': 0.7, 'rows': 3}
    """
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def numeric(tree: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of :func:`flatten` (booleans and text left out), as floats.

    >>> numeric({"eval": {"auc": 0.7, "note": "x"}, "ok": True, "nan": float("nan")})
    {'eval.auc': 0.7}
    """
    out = {}
    for key, value in flatten(tree).items():
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)
    return out


def _key(name: str) -> str:
    """``name`` with the characters MLflow refuses in a key as ``_``.

    >>> _key("topn:hr@10 (eval)")
    'topn:hr_10 _eval_'
    """
    return re.sub(r"[^\w\-. :/]", "_", name)[:250]


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text[:_PARAM_CHARS]


def package_version(package: str) -> str:
    """The installed version of ``package`` without a local suffix (``2.13.0+cpu`` -> ``2.13.0``)."""
    return metadata.version(package).split("+")[0]


@dataclass(frozen=True)
class ModelLog:
    """One model of a stage run, logged with its MLflow flavour and registered.

    ``load()`` returns the object to log: a ``lightgbm.Booster`` (flavour ``lightgbm``), a
    ``torch.nn.Module`` (``pytorch``, pickled with its class, so the package must be importable
    where it loads) or an ``mlflow.pyfunc.PythonModel`` (``pyfunc``, with ``artifacts``: name ->
    local path). It is called only when tracking is on. ``columns`` (name, MLflow type) are the
    input columns of a ``lightgbm``/``pyfunc`` model, ``tensors`` (name, numpy dtype, width) the
    inputs of a ``pytorch`` one: its signature (Unity Catalog requires one). ``parents``: engine
    model name -> engine version of the models this one was built from. ``profile`` names the
    alias set on the new version ("" = none, for a model trained on no feature profile).

    Any PyTorch model of a stage logs this way, e.g. a retriever taking item sequences::

        tracker.log(StageLog("train-retriever", run_id, params=..., metrics=..., models=[
            ModelLog("retriever", "pytorch", lambda: load(folder), version, "",
                     tensors=[("items", "int64", max_len)])]))
    """

    name: str
    flavour: Flavour
    load: Callable[[], Any]
    version: str
    profile: str
    columns: Sequence[tuple[str, str]] = ()
    tensors: Sequence[tuple[str, str, int]] = ()
    parents: Mapping[str, str] = field(default_factory=dict)
    artifacts: Mapping[str, str] = field(default_factory=dict)
    requirements: Sequence[str] = ()


@dataclass(frozen=True)
class StageLog:
    """What one stage run logs: ``params`` and ``metrics`` may nest (flattened with dots; metrics
    keep their finite numbers), ``seconds`` are logged as metrics ``seconds.<phase>``,
    ``input_versions`` as params ``input.<table>``, ``features`` as ``features.json``, ``dicts``
    as JSON artifacts (file name -> object), ``files`` as artifacts."""

    command: str
    run_id: str
    params: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    seconds: Mapping[str, Any] = field(default_factory=dict)
    input_versions: Mapping[str, int] = field(default_factory=dict)
    features: Sequence[str] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    dicts: Mapping[str, Any] = field(default_factory=dict)
    files: Sequence[str] = ()
    models: Sequence[ModelLog] = ()


class Tracker:
    """A stage's link to MLflow (see :func:`open_tracker`); disabled, every call does nothing."""

    def __init__(self, cfg: Config, experiment_id: str | None = None) -> None:
        self.settings: TrackingConfig = cfg.tracking
        self.uris = (store_uri(cfg), cfg.tracking.registry_uri or store_uri(cfg)) if experiment_id else None
        self.config_hash = cfg.digest()
        self.experiment_id = experiment_id
        self.started_ms = int(time.time() * 1000)

    @property
    def enabled(self) -> bool:
        return self.experiment_id is not None

    def registered_name(self, model: str) -> str:
        return f"{self.settings.registered_model_prefix}{model}"

    def log(self, stage: StageLog) -> dict[str, Any]:
        """Write ``stage`` as one MLflow run; returns ``{"run_id", "models": {name: "<registered
        name>/<version>"}}`` ({} when disabled)."""
        if self.experiment_id is None:
            return {}
        import mlflow
        from mlflow.tracking import MlflowClient

        started = time.perf_counter()
        self._point_mlflow()
        client = MlflowClient()
        tags = {
            "relisten.command": stage.command,
            "relisten.run_id": stage.run_id,
            "relisten.config_hash": self.config_hash,
            **stage.tags,
        }
        run = client.create_run(
            self.experiment_id, start_time=self.started_ms, tags=tags, run_name=stage.run_id
        )
        registered: dict[str, str] = {}
        with mlflow.start_run(run_id=run.info.run_id):
            self._log_values(client, run.info.run_id, stage)
            for model in stage.models:
                registered[model.name] = self._log_model(client, stage.run_id, model)
        seconds = time.perf_counter() - started
        log.info(
            "tracking: %s logged as MLflow run %s %s in %.1f s",
            stage.command,
            run.info.run_id,
            registered,
            seconds,
        )
        return {"run_id": run.info.run_id, "models": registered}

    def _point_mlflow(self) -> None:
        """MLflow's process-wide store and registry set to this tracker's (another tracker may
        have pointed them elsewhere since this one opened)."""
        import mlflow

        if self.uris is not None:
            mlflow.set_tracking_uri(self.uris[0])
            mlflow.set_registry_uri(self.uris[1])

    def _log_values(self, client: Any, mlflow_run: str, stage: StageLog) -> None:
        import mlflow
        from mlflow.entities import Metric, Param

        params = {
            **flatten(stage.params),
            **{f"input.{t}": v for t, v in stage.input_versions.items()},
            "features.count": len(stage.features),
        }
        items = [Param(_key(k), _param_text(v)) for k, v in params.items() if v is not None]
        stamp = int(time.time() * 1000)
        values = {**numeric(stage.metrics), **{f"seconds.{k}": v for k, v in numeric(stage.seconds).items()}}
        metrics = [Metric(_key(k), v, stamp, 0) for k, v in values.items()]
        for i in range(0, max(len(items), len(metrics)), _PARAMS_PER_CALL):
            part = slice(i, i + _PARAMS_PER_CALL)
            client.log_batch(mlflow_run, metrics=metrics[part], params=items[part])
        if stage.features:
            mlflow.log_dict({"features": list(stage.features)}, "features.json")
        for name, payload in stage.dicts.items():
            mlflow.log_dict(payload, name)
        for path in stage.files:
            mlflow.log_artifact(path)

    def _log_model(self, client: Any, engine_run: str, model: ModelLog) -> str:
        """Log ``model`` in the active run, register it with its lineage; ``<name>/<version>``."""
        import mlflow

        name = self.registered_name(model.name)
        with warnings.catch_warnings():  # the signature is given; no input example is wanted
            warnings.filterwarnings("ignore", r".*input example was not provided", UserWarning)
            info = _log_flavour(model)
        tags = {
            "engine_version": model.version,
            "engine_run_id": engine_run,
            "profile": model.profile,
            "parents": json.dumps(self.registered_versions(model.parents), sort_keys=True),
            "parent_engine_versions": json.dumps(dict(model.parents), sort_keys=True),
        }
        version = mlflow.register_model(info.model_uri, name, tags=tags).version
        if model.profile:
            client.set_registered_model_alias(name, model.profile, version)
        return f"{name}/{version}"

    def registered_versions(self, models: Mapping[str, str]) -> dict[str, str]:
        """``{model: "<registered name>/<version>"}`` of the registered versions whose tag
        ``engine_version`` is the given engine version; models never registered are left out."""
        if self.experiment_id is None or not models:
            return {}
        from mlflow.tracking import MlflowClient

        self._point_mlflow()
        client = MlflowClient()
        found = {}
        for model, engine_version in models.items():
            name = self.registered_name(model)
            for mv in client.search_model_versions(f"name = '{name}'"):  # a model's versions: few
                if mv.tags.get("engine_version") == engine_version:
                    found[model] = f"{name}/{mv.version}"
                    break
        return found


def _signature(model: ModelLog) -> Any:
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    if model.tensors:
        inputs = Schema(
            [TensorSpec(np.dtype(dtype), (-1, width), name) for name, dtype, width in model.tensors]
        )
        return ModelSignature(inputs, Schema([TensorSpec(np.dtype("float32"), (-1,))]))
    if not model.columns:
        return None
    inputs = Schema([ColSpec(kind, name) for name, kind in model.columns])
    return ModelSignature(inputs, Schema([ColSpec("double")]))


def _log_flavour(model: ModelLog) -> Any:
    """``mlflow.<flavour>.log_model`` of ``model`` in the active run; its ``ModelInfo``.

    Requirements are given, not inferred (inference loads the model in a subprocess: seconds).
    """
    import mlflow

    common = {"name": model.name, "signature": _signature(model)}
    if model.flavour == "lightgbm":
        import mlflow.lightgbm

        reqs = [f"lightgbm=={package_version('lightgbm')}", *model.requirements]
        return mlflow.lightgbm.log_model(model.load(), pip_requirements=reqs, **common)
    # pickled with the engine's own classes: the package must be installed where they load
    reqs = [f"torch=={package_version('torch')}", f"relisten_spark=={package_version('relisten_spark')}"]
    reqs += model.requirements
    if model.flavour == "pytorch":
        import mlflow.pytorch

        return mlflow.pytorch.log_model(
            model.load(), serialization_format="pickle", pip_requirements=reqs, **common
        )
    return mlflow.pyfunc.log_model(
        python_model=model.load(), artifacts=dict(model.artifacts), pip_requirements=reqs, **common
    )


def _connect(cfg: Config) -> str:
    """Point MLflow at the configured store and registry, find or create the experiment; its id.

    Raises :class:`ConfigError` (one line) when the store or the registry cannot be reached.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = store_uri(cfg)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    registry = cfg.tracking.registry_uri or uri
    try:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(registry)
        client = MlflowClient(uri, registry)
        experiment = client.get_experiment_by_name(cfg.tracking.experiment)
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else client.create_experiment(cfg.tracking.experiment, artifact_location=artifact_location(cfg))
        )
        client.search_registered_models(max_results=1)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"MLflow tracking at tracking.uri={uri} (registry {registry}) is not usable: {first}"
        ) from None
    return str(experiment_id)


def open_tracker(cfg: Config) -> Tracker:
    """A stage's tracker, checked before the stage does any work (see the module doc)."""
    if not cfg.tracking.enabled:
        return Tracker(cfg)
    started = time.perf_counter()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # batch jobs: no usage pings
    experiment_id = _connect(cfg)
    tracker = Tracker(cfg, experiment_id)
    log.info(
        "tracking: experiment %s at %s (%.1f s)",
        cfg.tracking.experiment,
        store_uri(cfg),
        time.perf_counter() - started,
    )
    return tracker
