"""Training presets of the ranking models: the thesis's settings and a fast one for the demo and tests.

LightGBM (``gbdt.preset``, :func:`resolve`): ``thesis_exact`` is the best row of the thesis's
``lgb_record.csv`` (FEATURES.md §4): 7732 rounds, no early stopping. ``thesis`` is that row with
GOSS in place of bagging (the sampling the thesis text names) and column-wise histograms forced
(LightGBM's own choice here, without its per-run test of both layouts): on the 1M-event features
(594k rows x 388) it trained 100 rounds ~30 % faster at the same eval AUC (``bench/gbdt.py --part
levers``); on the full-scale features (5.9M rows x 388, 2 barrier tasks) 340 s against 592 s per
100 rounds, eval AUC 0.78609 against 0.78582 (``--part b``, one run each). The thesis ran with
12 threads on all of train_part; here the number of threads per task is ``spark.task.cpus`` and
the rows are spread over ``gbdt.num_tasks`` tasks. ``fast`` trains in seconds on the demo data:
fewer, smaller trees, a higher minimum leaf size than LightGBM's default to keep a small sample
from overfitting.

Categorical columns (``categorical``):

* ``source`` — only a column named ``source`` (the context triple code) is categorical, as
  in the thesis code; every other code stays an ordinal number (FEATURES.md §2, "Categorical
  dtype"). When the feature set has no ``source`` column, nothing is categorical.
* ``manifest`` — every model column whose manifest row says ``categorical=true``.
* ``none`` — all columns numeric.

``gbdt.params`` entries override the preset's; ``gbdt.num_boost_round`` overrides its rounds;
``gbdt.categorical`` (other than ``preset``) overrides its categorical choice.

The nets (``nets.preset``, :data:`NET_PRESETS`): ``thesis`` is the notebook's (FEATURES.md
§3.2: K=74, K0=11, lr0=0.001405365 decayed x0.778385 per epoch, batch 8192, JENN Adam up to 40
epochs with early stopping patience 3, F-ELU-Net RMSprop 26 fixed epochs). Deviations: early
stopping watches the validation AUC (the issue and the thesis text; the code watched val_loss)
and restores the best epoch; ReduceLROnPlateau is left out (the scheduler overwrote it every
epoch); Adam / RMSprop use Keras's epsilon 1e-7 and RMSprop Keras's rho 0.9. ``fast`` keeps the
architecture with smaller embeddings (K=16, K0=4), batch 512, lr0 0.002 and 6 epochs, for the
demo and tests. ``nets.*`` settings override them
(:func:`relisten_spark.models.ddp.job.train_params`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from relisten_spark.config import GbdtConfig
from relisten_spark.errors import ConfigError
from relisten_spark.runtime import FELU_NET, JENN

# Parameters the trainer sets itself (network, threads, data layout): a config must not.
RESERVED = frozenset(
    {
        "machines",
        "machine_list_filename",
        "num_machines",
        "local_listen_port",
        "time_out",
        "pre_partition",
        "tree_learner",
        "num_threads",
        "num_iterations",
        "num_boost_round",
        "n_estimators",
        "early_stopping_round",
        "early_stopping_rounds",
        "categorical_feature",
    }
)

THESIS_EXACT_PARAMS: dict[str, Any] = {
    "boosting_type": "gbdt",
    "objective": "binary",
    "metric": ["binary_logloss", "auc"],
    "learning_rate": 0.1,
    "num_leaves": 99,
    "max_depth": 10,
    "min_data_in_leaf": 1306,
    "feature_fraction": 0.6866,
    "bagging_fraction": 0.9054,
    "bagging_freq": 1,
    "lambda_l1": 6.37,
    "lambda_l2": 65200.0,
    "min_gain_to_split": 0.0,
    "min_sum_hessian_in_leaf": 0.1,
    "max_bin": 255,
    "seed": 42,
    "verbosity": -1,
}

THESIS_PARAMS: dict[str, Any] = {
    **THESIS_EXACT_PARAMS,
    "data_sample_strategy": "goss",  # GOSS keeps every row in the first 1/learning_rate rounds
    "bagging_fraction": 1.0,  # GOSS and bagging exclude each other
    "bagging_freq": 0,
    "force_col_wise": True,
}

FAST_PARAMS: dict[str, Any] = {
    "boosting_type": "gbdt",
    "objective": "binary",
    "metric": ["binary_logloss", "auc"],
    "learning_rate": 0.1,
    "num_leaves": 31,
    "max_depth": -1,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l1": 0.0,
    "lambda_l2": 1.0,
    "min_gain_to_split": 0.0,
    "min_sum_hessian_in_leaf": 1e-3,
    "max_bin": 255,
    "seed": 42,
    "verbosity": -1,
}

LIGHTGBM_PRESETS: dict[str, tuple[dict[str, Any], int, str]] = {
    "thesis": (THESIS_PARAMS, 7732, "source"),
    "thesis_exact": (THESIS_EXACT_PARAMS, 7732, "source"),
    "fast": (FAST_PARAMS, 100, "manifest"),
}


@dataclass(frozen=True)
class TrainSettings:
    """What a backend needs besides the data: LightGBM params, rounds, early stopping, categoricals."""

    params: dict[str, Any]
    num_boost_round: int
    early_stopping_rounds: int
    categorical: str


def resolve(cfg: GbdtConfig) -> TrainSettings:
    """The preset named by ``cfg.preset`` with the config's overrides laid over it.

    >>> s = resolve(GbdtConfig(preset="thesis"))
    >>> s.num_boost_round, s.params["num_leaves"], s.categorical
    (7732, 99, 'source')
    >>> resolve(GbdtConfig(params={"learning_rate": 0.05}, num_boost_round=10)).params["learning_rate"]
    0.05
    """
    base, rounds, categorical = LIGHTGBM_PRESETS[cfg.preset]
    reserved = sorted(RESERVED & set(cfg.params))
    if reserved:
        raise ConfigError(
            f"gbdt.params.{reserved[0]} is set by the trainer; use gbdt.num_tasks, gbdt.tree_learner, "
            "gbdt.num_boost_round, gbdt.early_stopping_rounds or gbdt.categorical instead"
        )
    params = {**base, **cfg.params}
    if params.get("objective") != "binary":
        raise ConfigError(f"gbdt.params.objective must be 'binary', got {params.get('objective')!r}")
    return TrainSettings(
        params=params,
        num_boost_round=cfg.num_boost_round or rounds,
        early_stopping_rounds=cfg.early_stopping_rounds,
        categorical=categorical if cfg.categorical == "preset" else cfg.categorical,
    )


def categorical_columns(mode: str, features: list[str], manifest_categorical: set[str]) -> list[str]:
    """The model columns LightGBM treats as categorical under ``mode`` (module docstring).

    >>> categorical_columns("source", ["source", "city"], {"city", "source"})
    ['source']
    >>> categorical_columns("manifest", ["source", "city", "bd"], {"city", "source"})
    ['source', 'city']
    """
    if mode == "none":
        return []
    if mode == "source":
        return [f for f in features if f == "source"]
    if mode == "manifest":
        return [f for f in features if f in manifest_categorical]
    raise ConfigError(f"gbdt.categorical must be preset, none, source or manifest, got {mode!r}")


# ---- the nets -------------------------------------------------------------------------------
@dataclass(frozen=True)
class NetPreset:
    """Batch, learning-rate schedule, embedding sizes, and per net (``jenn`` / ``felu_net``) the
    epochs and whether early stopping is on."""

    batch_size: int
    lr0: float
    decay: float
    k_user: int
    k_cat: int
    epochs: Mapping[str, int]
    early_stopping: Mapping[str, bool]


NET_PRESETS = {
    "thesis": NetPreset(
        batch_size=8192,
        lr0=0.001405365,
        decay=0.778385,
        k_user=74,
        k_cat=11,
        epochs={JENN: 40, FELU_NET: 26},
        early_stopping={JENN: True, FELU_NET: False},
    ),
    "fast": NetPreset(
        batch_size=512,
        lr0=0.002,
        decay=0.778385,
        k_user=16,
        k_cat=4,
        epochs={JENN: 6, FELU_NET: 6},
        early_stopping={JENN: True, FELU_NET: False},
    ),
}
NET_OPTIMIZERS = {JENN: "adam", FELU_NET: "rmsprop"}
