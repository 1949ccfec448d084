"""The SynapseML backend (``gbdt.backend: synapseml``): the same model through LightGBMClassifier.

SynapseML's ``synapse.ml.lightgbm.LightGBMClassifier`` trains LightGBM data-parallel inside
Spark itself. This backend maps our LightGBM parameters onto its setters
(:func:`synapse_params`, a pure function), fits on a ``VectorAssembler`` of the model columns
and takes the native model string from the fitted model (``getNativeModel``), so both
backends leave the same artifact (``model.txt``) and the rest of ``train-gbdt`` is shared.

It needs SynapseML's jar (``com.microsoft.azure:synapseml-lightgbm``, e.g. through
``--packages`` or a Databricks cluster library): its Python wrappers ship inside the jar.
Without it, choosing this backend is a :class:`~relisten_spark.errors.ConfigError`. Maven is
unreachable on the development machine, so the fit path is exercised only where the jar is.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from relisten_spark.errors import ConfigError, TrainingError
from relisten_spark.models.gbdt.inputs import TrainRows
from relisten_spark.models.presets import TrainSettings

SYNAPSE_CLASS = "com.microsoft.azure.synapse.ml.lightgbm.LightGBMClassifier"
SYNAPSE_PACKAGE = "com.microsoft.azure:synapseml-lightgbm"

# LightGBM parameter -> (LightGBMClassifier param, Python type it takes)
SETTERS: dict[str, tuple[str, type]] = {
    "objective": ("objective", str),
    "boosting_type": ("boostingType", str),
    "learning_rate": ("learningRate", float),
    "num_leaves": ("numLeaves", int),
    "max_depth": ("maxDepth", int),
    "min_data_in_leaf": ("minDataInLeaf", int),
    "min_sum_hessian_in_leaf": ("minSumHessianInLeaf", float),
    "feature_fraction": ("featureFraction", float),
    "feature_fraction_bynode": ("featureFractionByNode", float),
    "bagging_fraction": ("baggingFraction", float),
    "pos_bagging_fraction": ("posBaggingFraction", float),
    "neg_bagging_fraction": ("negBaggingFraction", float),
    "bagging_freq": ("baggingFreq", int),
    "lambda_l1": ("lambdaL1", float),
    "lambda_l2": ("lambdaL2", float),
    "min_gain_to_split": ("minGainToSplit", float),
    "max_delta_step": ("maxDeltaStep", float),
    "max_bin": ("maxBin", int),
    "min_data_per_bin": ("minDataPerBin", int),
    "bin_construct_sample_cnt": ("binSampleCount", int),
    "is_unbalance": ("isUnbalance", bool),
    "boost_from_average": ("boostFromAverage", bool),
    "verbosity": ("verbosity", int),
    "seed": ("seed", int),
    "deterministic": ("deterministic", bool),
    "bagging_seed": ("baggingSeed", int),
    "feature_fraction_seed": ("featureFractionSeed", int),
    "data_random_seed": ("dataRandomSeed", int),
    "extra_seed": ("extraSeed", int),
    "top_k": ("topK", int),
    "min_data_per_group": ("minDataPerGroup", int),
    "max_cat_threshold": ("maxCatThreshold", int),
    "cat_l2": ("catl2", float),
    "cat_smooth": ("catSmooth", float),
    "max_cat_to_onehot": ("maxCatToOnehot", int),
    "top_rate": ("topRate", float),
    "other_rate": ("otherRate", float),
}
PARALLELISM = {"data": "data_parallel", "voting": "voting_parallel"}


def _lightgbm_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return ",".join(_lightgbm_value(v) for v in value)
    return str(value)


def synapse_params(
    settings: TrainSettings,
    categorical_indexes: list[int],
    num_tasks: int,
    tree_learner: str,
    num_threads: int,
    timeout_s: float,
) -> dict[str, Any]:
    """Keyword arguments of ``LightGBMClassifier`` equivalent to our training settings.

    Parameters with a SynapseML setter map onto it (:data:`SETTERS`); ``metric`` becomes a
    comma-separated string; any other LightGBM parameter goes into ``passThroughArgs`` as
    ``key=value`` pairs, which SynapseML hands to LightGBM unchanged.

    >>> from relisten_spark.models.presets import TrainSettings
    >>> s = TrainSettings({"objective": "binary", "num_leaves": 7, "extra_trees": True}, 10, 0, "none")
    >>> p = synapse_params(s, [], 2, "data", 1, 60)
    >>> p["numLeaves"], p["numIterations"], p["passThroughArgs"]
    (7, 10, 'extra_trees=true')
    """
    out: dict[str, Any] = {}
    passthrough: list[str] = []
    for key, value in sorted(settings.params.items()):
        if key == "metric":
            out["metric"] = _lightgbm_value(value)
        elif key in SETTERS:
            name, kind = SETTERS[key]
            out[name] = kind(value)
        else:
            passthrough.append(f"{key}={_lightgbm_value(value)}")
    out.update(
        numIterations=int(settings.num_boost_round),
        earlyStoppingRound=int(settings.early_stopping_rounds),
        parallelism=PARALLELISM[tree_learner],
        numTasks=int(num_tasks),
        numThreads=int(num_threads),
        timeout=float(timeout_s),
        useBarrierExecutionMode=True,
        categoricalSlotIndexes=list(categorical_indexes),
    )
    if passthrough:
        out["passThroughArgs"] = " ".join(passthrough)
    return out


def synapseml_available(spark: SparkSession) -> bool:
    """True when SynapseML's LightGBMClassifier class loads in the driver's JVM."""
    try:
        jvm = spark.sparkContext._jvm
        if jvm is None:
            return False
        jvm.java.lang.Class.forName(SYNAPSE_CLASS)
    except Exception:
        return False
    return True


def require_synapseml(spark: SparkSession) -> Any:
    """The ``LightGBMClassifier`` Python class, or a ConfigError naming the missing jar."""
    if not synapseml_available(spark):
        raise ConfigError(
            f"gbdt.backend=synapseml needs SynapseML's jar ({SYNAPSE_PACKAGE}) on the Spark classpath: "
            f"class {SYNAPSE_CLASS} not found (use gbdt.backend=barrier, or add the package)"
        )
    try:
        from synapse.ml.lightgbm import LightGBMClassifier
    except ImportError as exc:
        raise ConfigError(
            "gbdt.backend=synapseml: the SynapseML jar is loaded but its Python package "
            f"(synapse.ml.lightgbm) is not importable: {exc}"
        ) from None
    return LightGBMClassifier


def train(
    spark: SparkSession,
    rows: TrainRows,
    settings: TrainSettings,
    num_tasks: int,
    tree_learner: str,
    num_threads: int,
    timeout_s: float,
) -> str:
    """Fit SynapseML's LightGBMClassifier; return LightGBM's native model string.

    ``rows``: :class:`~relisten_spark.models.gbdt.inputs.TrainRows` (``valid`` is used only
    when early stopping is on; ``idx`` is not needed). The model keeps our feature names
    (``slotNames``) so its string matches the barrier backend's.
    """
    from pyspark.ml.feature import VectorAssembler

    classifier_cls = require_synapseml(spark)
    features = rows.features
    cols = [F.col("target").cast("double").alias("label")] + [
        F.col(f).cast("double").alias(f) for f in features
    ]
    data = rows.fit.select(*cols, F.lit(False).alias("is_valid"))
    validation = rows.valid if settings.early_stopping_rounds > 0 else None
    if validation is not None:
        data = data.unionByName(validation.select(*cols, F.lit(True).alias("is_valid")))
    assembled = VectorAssembler(inputCols=features, outputCol="features", handleInvalid="keep").transform(
        data
    )
    kwargs = synapse_params(
        settings,
        [features.index(c) for c in rows.categorical],
        num_tasks=num_tasks,
        tree_learner=tree_learner,
        num_threads=num_threads,
        timeout_s=timeout_s,
    )
    classifier = classifier_cls(featuresCol="features", labelCol="label", slotNames=list(features), **kwargs)
    if validation is not None:
        classifier = classifier.setValidationIndicatorCol("is_valid")
    try:
        model = classifier.fit(assembled)
    except Exception as exc:
        raise TrainingError(
            f"SynapseML LightGBM training failed: {str(exc).strip().splitlines()[0]}"
        ) from exc
    return str(model.getNativeModel())
