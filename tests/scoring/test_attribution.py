"""Path contributions: additive like SHAP, equal to TreeSHAP for one-split trees, per-split
credits on a hand-made tree, and what the reasons are built from."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from relisten_spark.scoring import attribution, rank


def _data(seed: int = 0, rows: int = 500, features: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features))
    x[rng.random(size=x.shape) < 0.05] = np.nan  # missing values take the default branch
    y = np.nan_to_num(x[:, 0]) - 0.7 * np.nan_to_num(x[:, 1]) + rng.normal(scale=0.5, size=rows) > 0
    return x, y.astype(int)


def _booster(x: np.ndarray, y: np.ndarray, **params: object) -> lgb.Booster:
    base = {"objective": "binary", "num_leaves": 15, "min_data_in_leaf": 5, "verbose": -1, "seed": 1}
    return lgb.train({**base, **params}, lgb.Dataset(x, y), num_boost_round=25)


def test_contributions_add_up_to_the_raw_score_and_share_shap_expected_value() -> None:
    x, y = _data()
    booster = _booster(x, y)
    table = attribution.path_contributions(booster)
    got = table.of(booster, x)
    raw = booster.predict(x, raw_score=True)
    np.testing.assert_allclose(got.sum(axis=1) + table.expected, raw, rtol=0, atol=1e-9)
    shap = booster.predict(x, pred_contrib=True)
    np.testing.assert_allclose(table.expected, shap[0, -1], rtol=0, atol=1e-9)
    assert not np.allclose(got, shap[:, :-1])  # deeper trees: a different attribution than SHAP


def test_one_split_trees_give_exactly_the_treeshap_values() -> None:
    x, y = _data(seed=3)
    booster = _booster(x, y, num_leaves=2)
    got = attribution.path_contributions(booster).of(booster, x)
    np.testing.assert_allclose(got, booster.predict(x, pred_contrib=True)[:, :-1], rtol=0, atol=1e-9)


def test_each_split_credits_its_feature_with_the_change_of_expected_output() -> None:
    """One tree by hand: root on f0 (10 rows), left leaf 1.0 (6 rows), right node on f2 (4 rows)
    with leaves 3.0 (1 row) and -1.0 (3 rows)."""
    tree = {
        "split_feature": 0,
        "left_child": {"leaf_index": 0, "leaf_value": 1.0, "leaf_count": 6},
        "right_child": {
            "split_feature": 2,
            "left_child": {"leaf_index": 1, "leaf_value": 3.0, "leaf_count": 1},
            "right_child": {"leaf_index": 2, "leaf_value": -1.0, "leaf_count": 3},
        },
    }

    class Stub:  # the two Booster methods path_contributions and of() read
        def dump_model(self) -> dict:
            return {"max_feature_idx": 2, "tree_info": [{"num_leaves": 3, "tree_structure": tree}]}

        def predict(self, x: np.ndarray, pred_leaf: bool, num_threads: int) -> np.ndarray:
            return x[:, :1].astype(int)  # column 0 holds the leaf of the row

    table = attribution.path_contributions(Stub())
    root, right = (6 * 1.0 + 3.0 - 3.0) / 10, (3.0 - 3.0) / 4
    assert table.expected == pytest.approx(root)
    got = table.of(Stub(), np.array([[0.0], [1.0], [2.0]]))
    want = [[1.0 - root, 0, 0], [right - root, 0, 3.0 - right], [right - root, 0, -1.0 - right]]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_reasons_name_the_largest_path_contributions() -> None:
    x, y = _data(seed=5)
    booster = _booster(x, y)
    names = [f"f{j}" for j in range(x.shape[1])]
    table = attribution.path_contributions(booster)
    got = rank.reasons(booster, x[:20], names, paths=table)
    contrib = table.of(booster, x[:20])
    for row, c in zip(got.to_pylist(), contrib, strict=True):  # each column its own reason here
        top = np.argsort(-c, kind="stable")[:3]
        assert [r["code"] for r in row] == [names[j] for j in top]
        np.testing.assert_allclose([r["weight"] for r in row], c[top] / np.abs(c).sum())
    assert rank.reasons(booster, x[:0], names, paths=table).to_pylist() == []
