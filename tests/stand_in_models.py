"""Stand-in models in a test registry: a LightGBM booster saved as a ``lightgbm`` version and a
stack over it alone, as scoring, the backtest and the report load them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightgbm as lgb

from relisten_spark.models import registry
from relisten_spark.runtime import LIGHTGBM_MODEL_FILE


def register_stack(
    models_root: str | Path,
    booster: lgb.Booster,
    features: Sequence[str],
    profile: str = "serving",
    weight: float = 1.0,
    intercept: float = 0.0,
) -> str:
    """Save ``booster`` (over ``features``) as a LightGBM version of ``profile`` and a stack of it
    alone (``weight``, ``intercept``); return the stack's version."""
    version = registry.save_model(
        models_root,
        "lightgbm",
        lambda folder: booster.save_model(str(folder / LIGHTGBM_MODEL_FILE)),
        {"features": list(features), "profile": profile},
    )
    meta = {
        "profile": profile,
        "base_models": {"lightgbm": version},
        "weights": {"lightgbm": weight},
        "intercept": intercept,
    }
    return registry.save_model(
        models_root, "stack", lambda folder: (folder / "stack.json").write_text("{}"), meta
    )
