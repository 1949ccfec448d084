"""Ensemble scoring, top-N with artist cap and tie-break, reasons, the per-worker model cache."""

from __future__ import annotations

import json
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pyspark.sql import Window
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from stand_in_models import register_stack

from relisten_spark import runtime
from relisten_spark.errors import InputError
from relisten_spark.models import registry
from relisten_spark.scoring import attribution, rank

pytestmark = pytest.mark.spark

FEATURES = [f"f{j}" for j in range(5)]
RULES = {"story": rank.SurfaceRule(top_n=4, max_per_artist=2), "shopping": rank.SurfaceRule(6, None)}
WEIGHT, INTERCEPT = 1.3, -0.2


def train_booster(seed: int = 0) -> lgb.Booster:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, len(FEATURES)))
    y = (x[:, 0] - 0.5 * x[:, 1] + rng.normal(scale=0.5, size=400) > 0).astype(int)
    params = {"objective": "binary", "num_leaves": 7, "min_data_in_leaf": 10, "verbose": -1, "seed": seed}
    return lgb.train(params, lgb.Dataset(x, y, feature_name=FEATURES), num_boost_round=15)


def register_models(models_root: Path, booster: lgb.Booster, profile: str = "serving") -> str:
    """A LightGBM version and a stack over it (weight WEIGHT, intercept INTERCEPT)."""
    return register_stack(models_root, booster, FEATURES, profile, WEIGHT, INTERCEPT)


def candidate_frame(seed: int = 1, users: int = 5, per_user: int = 9) -> pd.DataFrame:
    """Candidates of two surfaces with features; few artists so the cap bites."""
    rng = np.random.default_rng(seed)
    rows = []
    for surface in ("story", "shopping"):
        for u in range(users):
            for c in range(per_user):
                rows.append(
                    (surface, f"u{u}", f"s{c:02d}", f"a{rng.integers(3)}", *rng.normal(size=len(FEATURES)))
                )
    return pd.DataFrame(rows, columns=["surface", "msno", "song_id", "artist_key", *FEATURES])


def expected_ranking(frame: pd.DataFrame, booster: lgb.Booster) -> pd.DataFrame:
    """The reference: the stack's score from the booster directly, then the ranking rules."""
    p = np.clip(booster.predict(frame[FEATURES].to_numpy()), runtime.LOGIT_EPS, 1 - runtime.LOGIT_EPS)
    score = 1 / (1 + np.exp(-(INTERCEPT + WEIGHT * np.log(p / (1 - p)))))
    scored = frame.assign(score=score)
    kept = rank.top_n_positions(scored, RULES)
    rows = scored.iloc[kept["pos"]]
    paths = attribution.path_contributions(booster)  # scoring.reasons defaults to "path"
    why = rank.reasons(booster, rows[FEATURES].to_numpy(), FEATURES, paths=paths)
    return pd.DataFrame(
        {
            "surface": rows["surface"].to_numpy(),
            "msno": rows["msno"].to_numpy(),
            "rank": kept["rank"].to_numpy().astype("int32"),
            "song_id": rows["song_id"].to_numpy(),
            "score": rows["score"].to_numpy(),
            "reasons": why.to_pylist(),
        }
    )


def test_top_n_positions_equal_the_window_definition(spark) -> None:
    rng = np.random.default_rng(4)
    rows = [
        (surface, f"u{u}", f"s{c:02d}", f"a{rng.integers(4)}", float(rng.integers(0, 6)) / 5)
        for surface in RULES
        for u in range(6)
        for c in range(12)
    ]
    frame = pd.DataFrame(rows, columns=["surface", "msno", "song_id", "artist_key", "score"])
    kept = rank.top_n_positions(frame, RULES)
    got = frame.iloc[kept["pos"]].assign(rank=kept["rank"].to_numpy())[["surface", "msno", "song_id", "rank"]]

    df = spark.createDataFrame(frame)
    order = [F.desc("score"), F.asc("song_id")]
    cap = F.when(F.col("surface") == "story", F.lit(2)).otherwise(F.lit(10**6))
    top = F.when(F.col("surface") == "story", F.lit(4)).otherwise(F.lit(6))
    capped = df.withColumn(
        "_a", F.row_number().over(Window.partitionBy("surface", "msno", "artist_key").orderBy(*order))
    ).where(F.col("_a") <= cap)
    want = (
        capped.withColumn("rank", F.row_number().over(Window.partitionBy("surface", "msno").orderBy(*order)))
        .where(F.col("rank") <= top)
        .select("surface", "msno", "song_id", F.col("rank").cast("long"))
    )
    assert (frame["score"].duplicated()).any()  # ties exist: the song_id tie-break is exercised
    assertDataFrameEqual(spark.createDataFrame(got.astype({"rank": "int64"})), want)


def test_reasons_are_the_largest_contributions() -> None:
    booster = train_booster()
    x = np.random.default_rng(2).normal(size=(6, len(FEATURES)))
    got = rank.reasons(booster, x, FEATURES)
    contrib = booster.predict(x, pred_contrib=True)[:, :-1]
    for row, c in zip(got.to_pylist(), contrib, strict=True):  # each column its own reason here
        top = np.argsort(-c, kind="stable")[:3]
        assert [r["code"] for r in row] == [FEATURES[j] for j in top]
        np.testing.assert_allclose([r["weight"] for r in row], c[top] / np.abs(c).sum())


def test_score_and_rank_matches_the_reference(spark, tmp_lake) -> None:
    booster = train_booster()
    version = register_models(Path(tmp_lake.models.root), booster)
    ens = rank.load_ensemble(tmp_lake.models.root, "serving")
    assert ens.versions["stack"] == version
    assert ens.lgb_features == tuple(FEATURES)
    frame = candidate_frame()
    pairs = spark.createDataFrame(frame.sample(frac=1.0, random_state=3))  # arrival order must not matter

    ranked = rank.score_and_rank(rank.cluster_by_user(pairs), ens, RULES, batch_size=7)
    with rank.arrow_batch_size(spark, 7):
        got = ranked.toPandas()

    want = expected_ranking(frame, booster)
    schema = rank.RANKED_SCHEMA
    assertDataFrameEqual(spark.createDataFrame(got, schema), spark.createDataFrame(want, schema), rtol=1e-9)
    assert (got.groupby(["surface", "msno"]).size().loc["shopping"] == 6).all()


def test_task_side_loads_each_model_once_and_ignores_batch_boundaries(tmp_lake, monkeypatch) -> None:
    booster = train_booster()
    register_models(Path(tmp_lake.models.root), booster)
    ens = rank.load_ensemble(tmp_lake.models.root, "serving")
    loads: list[str] = []
    real_load = rank._load

    def counting_load(ref: rank.ModelRef):
        loads.append(ref.name)
        return real_load(ref)

    monkeypatch.setattr(rank, "_load", counting_load)
    cache = runtime.ModelCache()
    monkeypatch.setattr(runtime, "MODELS", cache)
    frame = candidate_frame(users=7).sort_values("msno", kind="stable")
    table = pa.Table.from_pandas(frame, preserve_index=False)

    def run(batch_size: int, arrow_rows: int) -> pd.DataFrame:
        out = rank._rank_fn(ens, RULES, batch_size, None)(iter(table.to_batches(max_chunksize=arrow_rows)))
        result = pa.Table.from_batches(list(out)).to_pandas()
        return result.sort_values(["surface", "msno", "rank"]).reset_index(drop=True)

    small, large = run(batch_size=5, arrow_rows=4), run(batch_size=10_000, arrow_rows=10_000)
    pd.testing.assert_frame_equal(small, large)
    assert loads == ["lightgbm"]
    version = ens.versions["lightgbm"]  # the model, its path contributions and compiled form, once each
    assert sorted(cache.keys()) == [
        ("lightgbm", version),
        ("lightgbm:paths", version),
        ("lightgbm:predictor", version, True),
    ]


def test_load_ensemble_checks_the_profile_and_lightgbm(tmp_lake) -> None:
    root = Path(tmp_lake.models.root)
    register_models(root, train_booster(), profile="full")
    with pytest.raises(InputError, match=r"no stack .* was trained on profile 'serving'"):
        rank.load_ensemble(str(root), "serving")
    meta = {"profile": "serving", "base_models": {"jenn": "x"}, "weights": {"jenn": 1.0}, "intercept": 0.0}
    registry.save_model(
        root, "stack", lambda folder: (folder / "stack.json").write_text(json.dumps(meta)), meta
    )
    with pytest.raises(InputError, match="no lightgbm base model"):
        rank.load_ensemble(str(root), "serving")
