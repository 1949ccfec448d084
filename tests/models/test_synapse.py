"""The SynapseML backend: parameter mapping (pure) and the error without its jar.

The fit path itself needs SynapseML's jar, which cannot be downloaded here (no Maven).
"""

from __future__ import annotations

import pytest

from relisten_spark.config import GbdtConfig, load_config
from relisten_spark.errors import ConfigError
from relisten_spark.models import presets
from relisten_spark.models.gbdt import stage
from relisten_spark.models.gbdt.inputs import TrainRows
from relisten_spark.models.synapse import SYNAPSE_PACKAGE, synapse_params, synapseml_available


def test_thesis_record_maps_onto_lightgbm_classifier_setters():
    settings = presets.resolve(GbdtConfig(preset="thesis_exact"))
    got = synapse_params(settings, [0], num_tasks=4, tree_learner="data", num_threads=12, timeout_s=120)
    assert got == {
        "objective": "binary",
        "boostingType": "gbdt",
        "metric": "binary_logloss,auc",
        "learningRate": 0.1,
        "numLeaves": 99,
        "maxDepth": 10,
        "minDataInLeaf": 1306,
        "featureFraction": 0.6866,
        "baggingFraction": 0.9054,
        "baggingFreq": 1,
        "lambdaL1": 6.37,
        "lambdaL2": 65200.0,
        "minGainToSplit": 0.0,
        "minSumHessianInLeaf": 0.1,
        "maxBin": 255,
        "seed": 42,
        "verbosity": -1,
        "numIterations": 7732,
        "earlyStoppingRound": 0,
        "parallelism": "data_parallel",
        "numTasks": 4,
        "numThreads": 12,
        "timeout": 120.0,
        "useBarrierExecutionMode": True,
        "categoricalSlotIndexes": [0],
    }


def test_thesis_preset_hands_goss_through():
    settings = presets.resolve(GbdtConfig(preset="thesis"))
    got = synapse_params(settings, [0], num_tasks=4, tree_learner="data", num_threads=12, timeout_s=120)
    assert got["passThroughArgs"] == "data_sample_strategy=goss force_col_wise=true"
    assert (got["baggingFraction"], got["baggingFreq"]) == (1.0, 0)


def test_types_passthrough_and_voting():
    settings = presets.TrainSettings(
        params={
            "objective": "binary",
            "learning_rate": 1,  # an int where SynapseML wants a double
            "num_leaves": 7.0,  # a float where it wants an int
            "is_unbalance": True,
            "extra_trees": True,
            "monotone_constraints": [1, 0, -1],
            "path_smooth": 0.5,
        },
        num_boost_round=30,
        early_stopping_rounds=5,
        categorical="none",
    )
    got = synapse_params(settings, [], num_tasks=2, tree_learner="voting", num_threads=1, timeout_s=60)
    assert isinstance(got["learningRate"], float)
    assert got["learningRate"] == 1.0
    assert isinstance(got["numLeaves"], int)
    assert got["numLeaves"] == 7
    assert got["isUnbalance"] is True
    assert got["parallelism"] == "voting_parallel"
    assert got["earlyStoppingRound"] == 5
    assert got["passThroughArgs"] == "extra_trees=true monotone_constraints=1,0,-1 path_smooth=0.5"


@pytest.mark.spark
def test_synapseml_backend_without_the_jar_is_a_clear_error(spark):
    assert not synapseml_available(spark)
    cfg = load_config(None, ["gbdt.backend=synapseml"])
    rows = spark.range(4).selectExpr("id as idx", "cast(id % 2 as int) as target", "rand() as a")
    with pytest.raises(
        ConfigError, match=rf"gbdt.backend=synapseml needs SynapseML's jar \({SYNAPSE_PACKAGE}\)"
    ):
        stage.train(spark, cfg, TrainRows(rows, None, ["a"], []), presets.resolve(cfg.gbdt))
