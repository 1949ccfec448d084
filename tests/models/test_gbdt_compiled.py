"""Compiled LightGBM inference (lleaves): same outputs as Booster.predict, compiled once, fallback."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pytest

from relisten_spark.models.gbdt import compiled
from relisten_spark.scoring import rank

FEATURES = ["f0", "f1", "f2", "f3", "source"]


def _rows(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES)))
    x[:, 4] = rng.integers(0, 9, n)  # a categorical code
    x[rng.random(n) < 0.1, 2] = np.nan  # missing values
    x[rng.random(n) < 0.05, 4] = np.nan
    return x


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """A small model with a categorical column and missing values, saved as a registry version
    ``<root>/lightgbm/<version>/model.txt`` (the compiled cache is ``<root>/lightgbm/.compiled``)."""
    x = _rows(4000, 0)
    y = (np.nan_to_num(x[:, 0]) - np.nan_to_num(x[:, 2]) + (x[:, 4] % 3 == 0) > 0.3).astype(np.float64)
    params = {"objective": "binary", "num_leaves": 15, "verbosity": -1, "num_threads": 1, "seed": 1}
    data = lgb.Dataset(x, y, feature_name=FEATURES, categorical_feature=["source"])
    booster = lgb.train(params, data, num_boost_round=30)
    folder = tmp_path_factory.mktemp("registry") / "lightgbm" / f"v-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    path = folder / "model.txt"
    booster.save_model(str(path))
    return path


def _cache(model_file: Path) -> Path:
    return model_file.parent.parent / compiled.COMPILED_DIR


def test_compiled_predictions_equal_booster_predict(model_file):
    booster = lgb.Booster(model_file=str(model_file))
    predictor = compiled.load_predictor(model_file, _cache(model_file), booster)
    assert predictor.kind == "compiled"
    x = _rows(5000, 1)
    np.testing.assert_allclose(predictor.predict(x), booster.predict(x), rtol=0, atol=1e-6)
    assert predictor.predict(x[:0]).shape == (0,)


def test_compiled_once_per_model_and_reused(model_file, caplog):
    cache = _cache(model_file)
    booster = lgb.Booster(model_file=str(model_file))
    compiled.load_predictor(model_file, cache, booster)
    target = compiled.compiled_file(model_file, cache)
    assert target.is_file()
    assert target.name.startswith(compiled.file_digest(model_file)[:16])
    stamp = target.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger=compiled.__name__):
        again = compiled.load_predictor(model_file, cache, booster)
    assert again.kind == "compiled"
    assert target.stat().st_mtime_ns == stamp  # loaded, not compiled again
    assert not [r for r in caplog.records if "compiling" in r.getMessage()]
    assert sorted(p.name for p in cache.iterdir()) == sorted([f".{target.name}.lock", target.name])


def test_a_model_string_shares_the_cache_of_its_model_file(model_file):
    """train-gbdt compiles its model string; scoring later finds it under the file's digest."""
    cache = model_file.parent.parent / "from-string"
    predictor = compiled.string_predictor(model_file.read_text(), cache)
    assert predictor.kind == "compiled"
    assert compiled.compiled_file(model_file, cache).is_file()
    assert compiled.string_predictor(model_file.read_text(), None).kind == "booster"


def test_booster_when_off_or_when_compiling_fails(model_file, caplog):
    booster = lgb.Booster(model_file=str(model_file))
    x = _rows(100, 2)
    off = compiled.load_predictor(model_file, _cache(model_file), booster, compiled=False)
    assert off.kind == "booster"
    np.testing.assert_array_equal(off.predict(x), booster.predict(x))
    blocker = model_file.parent / "not-a-folder"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING, logger=compiled.__name__):
        failed = compiled.load_predictor(model_file, blocker / "cache", booster)
    assert failed.kind == "booster"
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("compiled LightGBM inference unavailable, using Booster.predict: ")


@pytest.mark.parametrize("use_compiled", [True, False], ids=["compiled", "booster"])
def test_scoring_logits_are_the_same_either_way(model_file, use_compiled):
    """rank.base_logits scores LightGBM with the compiled model (scoring.compiled_gbdt)."""
    ref = rank.ModelRef("lightgbm", model_file.parent.name, str(model_file.parent))
    ens = rank.Ensemble(
        "s1", "serving", {"lightgbm": 1.0}, 0.0, (ref,), tuple(FEATURES), compiled_gbdt=use_compiled
    )
    x = _rows(300, 3)
    table = pa.table({f: x[:, j] for j, f in enumerate(FEATURES)})
    logits = rank.base_logits(ens, table, x)["lightgbm"]
    p = np.clip(lgb.Booster(model_file=str(model_file)).predict(x), rank.LOGIT_EPS, 1 - rank.LOGIT_EPS)
    np.testing.assert_allclose(logits, np.log(p / (1 - p)), rtol=0, atol=1e-6)
    predictor = rank.runtime.MODELS.get(("lightgbm:predictor", ref.version, use_compiled), lambda: None)
    assert predictor is not None
    assert predictor.kind == ("compiled" if use_compiled else "booster")
