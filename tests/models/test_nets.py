"""JENN and F-ELU-Net modules: manifest-driven inputs, the thesis widths, the blocks, persistence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from relisten_spark.errors import InputError
from relisten_spark.features import manifest
from relisten_spark.features.catalogue import catalogue
from relisten_spark.models import nets
from relisten_spark.models.nets import NetHyper, NetInputs, Standardization

pytestmark = pytest.mark.torch

FIELDS = (
    "name",
    "family",
    "dtype",
    "horizon",
    "profile",
    "entity",
    "categorical",
    "cardinality",
    "in_gbdt",
    "in_nn",
)


def _row(name, entity, family="f", categorical=False, cardinality=None, in_nn=True, component=None) -> dict:
    """A manifest row; numeric rows take the default fill, SVD factor rows their ``component``."""
    values = (
        name,
        family,
        "int" if categorical else "double",
        "BATCH",
        "full",
        entity,
        categorical,
        cardinality,
    )
    fill = None if categorical else "mean"
    row = dict(zip(FIELDS, (*values, True, in_nn), strict=True))
    return {**row, "note": None, "nn_fill": fill, "svd_component": component}


def thesis_manifest() -> list[dict]:
    """The notebook's inputs (FEATURES.md §3.1): 19 categoricals, 2 genres, 38 context numerics,
    usr_feat (58), song_feat (13) and the SVD groups, as manifest rows."""
    rows = [_row("msno_code", "user", "ids", True, 34403)]
    rows += [_row(n, "user", "member", True, 20) for n in ("city", "gender", "registered_via")]
    rows += [_row(n, "song", "song", True, 50) for n in ("artist_name", "language", "cc")]
    rows += [_row(n, "song", "song", True, 30) for n in ("first_genre_id", "second_genre_id")]
    context_cats = [
        "source_type", "source_screen_name", "source_system_tab", "before_source_type", "after_source_type",
        "before_source_screen_name", "after_source_screen_name", "before_language", "after_language",
    ]  # fmt: skip
    rows += [_row(n, "context", "ids", True, 25) for n in context_cats]
    rows += [_row("song_code", "song", "ids", True, 1000)]
    rows += [_row(n, "context", "neighbors", True, 1000) for n in ("before_song_code", "after_song_code")]
    rows += [_row(f"context_num_{j}", "context") for j in range(38)]
    rows += [_row(f"usr_feat_{j}", "user") for j in range(58)]
    rows += [_row(f"song_feat_{j}", "song") for j in range(13)]
    rows += [_row(f"member_component_{j}", "user", "svd_user", component=j) for j in range(48)]
    rows += [_row(f"member_artist_component_{j}", "user", "svd_user", component=j) for j in range(16)]
    for prefix, entity, family in (("", "song", "svd_song"), ("before_", "context", "previous_song"),
                                   ("after_", "context", "next_song")):  # fmt: skip
        rows += [_row(f"{prefix}song_component_{j}", entity, family, component=j) for j in range(48)]
        rows += [_row(f"{prefix}artist_component_{j}", entity, family, component=j) for j in range(16)]
    rows += [_row("lgbm_only", "context", in_nn=False)]
    return rows


def small_manifest() -> list[dict]:
    rows = [_row("msno_code", "user", "ids", True, 10), _row("city", "user", "member", True, 3)]
    rows += [
        _row("first_genre_id", "song", "song", True, 4),
        _row("second_genre_id", "song", "song", True, 6),
    ]
    rows += [_row("song_code", "song", "ids", True, 12), _row("source_type", "context", "ids", True, 5)]
    rows += [_row("bd", "user"), _row("song_length", "song"), _row("timestamp", "context")]
    rows += [_row(f"member_component_{j}", "user", "svd_user", component=j) for j in range(3)]
    rows += [_row(f"song_component_{j}", "song", "svd_song", component=j) for j in range(3)]
    before = [_row(f"before_song_component_{j}", "context", "previous_song", component=j) for j in (0, 2)]
    rows += before  # component 1 dropped
    return rows


def _stats(inputs: NetInputs, mean: float = 0.0, std: float = 1.0, fill: float = 0.0) -> Standardization:
    n = len(inputs.numeric)
    return Standardization(tuple(inputs.numeric_names), (mean,) * n, (std,) * n, (fill,) * n)


def _batch(inputs: NetInputs, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    cards = np.array([c.cardinality for c in inputs.categorical])
    cat = (rng.random((n, len(cards))) * cards).astype(np.int64)
    num = rng.normal(size=(n, len(inputs.numeric))).astype(np.float32)
    return torch.from_numpy(cat), torch.from_numpy(num)


def test_manifest_gives_roles_branches_and_svd_groups() -> None:
    inputs = NetInputs.from_manifest(small_manifest(), "full")
    roles = {c.name: (c.role, c.table, c.entity) for c in inputs.categorical}
    assert roles == {
        "city": ("plain", "city", "user"),
        "first_genre_id": ("plain", "genre", "song"),
        "msno_code": ("user_id", "msno_code", "user"),
        "second_genre_id": ("plain", "genre", "song"),
        "song_code": ("song_id", "song_code", "song"),
        "source_type": ("plain", "source_type", "context"),
    }
    groups = {g.name: (g.pair, g.side, g.columns) for g in inputs.svd_groups}
    assert groups == {
        "before_song_component": (
            "song",
            "neighbour",
            ("before_song_component_0", "before_song_component_2"),
        ),
        "member_component": ("song", "user", tuple(f"member_component_{j}" for j in range(3))),
        "song_component": ("song", "song", tuple(f"song_component_{j}" for j in range(3))),
    }
    assert [g.components for g in inputs.svd_groups] == [(0, 2), (0, 1, 2), (0, 1, 2)]
    scaled = {n.name: n.scaled for n in inputs.numeric}
    assert scaled["bd"]
    assert scaled["timestamp"]
    assert not scaled["member_component_0"]
    assert NetInputs.from_dict(inputs.to_dict()) == inputs


def test_manifest_errors_name_the_column() -> None:
    rows = small_manifest()
    with pytest.raises(InputError, match="city has no cardinality"):
        NetInputs.from_manifest([{**r, "cardinality": None} if r["name"] == "city" else r for r in rows])
    with pytest.raises(InputError, match="bd has entity 'member'"):
        NetInputs.from_manifest([{**r, "entity": "member"} if r["name"] == "bd" else r for r in rows])
    user_less = [r for r in rows if r["entity"] != "user" or r["name"] == "msno_code"]
    with pytest.raises(InputError, match="no in_nn inputs for the user branch"):
        NetInputs.from_manifest(user_less, "serving")
    with pytest.raises(InputError, match="bd has unknown nn_fill=median"):
        NetInputs.from_manifest([{**r, "nn_fill": "median"} if r["name"] == "bd" else r for r in rows])
    with pytest.raises(InputError, match="numeric column bd has no nn_fill"):
        NetInputs.from_manifest([{**r, "nn_fill": None} if r["name"] == "bd" else r for r in rows])
    with pytest.raises(InputError, match="timestamp has svd_component 4 but is no component"):
        NetInputs.from_manifest([{**r, "svd_component": 4} if r["name"] == "timestamp" else r for r in rows])


def test_fill_rules_come_from_the_manifest_column() -> None:
    rules = {"bd": "user_mean", "song_length": "song_mean"}
    rows = [{**r, "nn_fill": rules.get(r["name"], r["nn_fill"])} for r in small_manifest()]
    fills = {n.name: n.fill for n in NetInputs.from_manifest(rows).numeric}
    assert fills["bd"] == "user_mean"
    assert fills["song_length"] == "song_mean"
    assert fills["timestamp"] == "mean"


def test_standardization_uses_the_moments_of_the_filled_column() -> None:
    present = np.array([3.0, 5.0, 10.0, 2.0])
    filled = np.concatenate([present, [7.0, 7.0]])  # two missing rows filled with 7
    moments = nets.Moments(6, 4, present.mean(), present.var(), 7.0)
    stats = Standardization.from_moments({"x": moments, "empty": nets.Moments(6, 0, None, None, 0.0)})
    assert stats.mean[0] == pytest.approx(filled.mean())
    assert stats.std[0] == pytest.approx(filled.std())
    assert (stats.mean[1], stats.std[1], stats.fill[1]) == (0.0, 1.0, 0.0)
    assert Standardization.from_dict(stats.to_dict()) == stats


def test_neighbour_cosine_uses_the_components_both_groups_have() -> None:
    inputs = NetInputs.from_manifest(small_manifest())
    model = nets.build("felu_net", inputs, _stats(inputs), NetHyper(k_user=4, k_cat=2, hidden=8))
    assert model.describe()["svd_cosines"] == [["before_song_component", "song_component"]]
    cat, num = _batch(inputs, 5)
    context = model._branch("context", model._codes(cat), num)
    col = {n: j for j, n in enumerate(inputs.numeric_names)}
    before = num[:, [col["before_song_component_0"], col["before_song_component_2"]]]
    song = num[:, [col["song_component_0"], col["song_component_2"]]]
    member = num[:, [col[f"member_component_{j}"] for j in range(3)]]
    current = num[:, [col[f"song_component_{j}"] for j in range(3)]]
    torch.testing.assert_close(context[:, -1], nn.functional.cosine_similarity(before, song, dim=1))
    torch.testing.assert_close(context[:, -2], (member * current).sum(1))  # the raw SVD dot


@pytest.mark.parametrize("profile", ["full", "serving"])
def test_the_feature_jobs_catalogue_builds_both_nets(profile) -> None:
    """Contract with relisten_spark.features.manifest: its in_nn rows make valid nets."""
    rows = [
        _row(
            s.name, s.entity, s.family, s.codes is not None, 7 if s.codes else None, s.in_nn, s.svd_component
        )
        | {"note": s.note, "nn_fill": s.nn_fill}
        for s in manifest.profile_specs(profile)
    ]
    inputs = NetInputs.from_manifest(rows, profile)
    assert {c.role for c in inputs.categorical} == {"user_id", "song_id", "plain"}
    assert {(g.pair, g.side) for g in inputs.svd_groups} >= {
        ("song", "user"),
        ("song", "song"),
        ("artist", "user"),
    }
    for kind in ("jenn", "felu_net"):
        model = nets.build(kind, inputs, _stats(inputs), NetHyper(k_user=4, k_cat=2, hidden=8)).eval()
        assert len(model.describe()["svd_dots"]) == 2
        cat, num = _batch(inputs, 3)
        assert torch.isfinite(model(cat, num)).all()


@pytest.mark.parametrize(
    ("kind", "context_width", "joint_width"), [("jenn", 304, 297), ("felu_net", 271, 223)]
)
def test_thesis_manifest_reproduces_the_notebook_widths(kind, context_width, joint_width) -> None:
    inputs = NetInputs.from_manifest(thesis_manifest())
    assert len(inputs.categorical) == 21
    assert "lgbm_only" not in inputs.numeric_names
    model = nets.build(kind, inputs, _stats(inputs), NetHyper())
    assert model.user_tower[0][0].in_features == 155
    assert model.song_tower[0][0].in_features == 132
    assert model.context_tower[0].in_features == context_width
    assert model.joint_width == joint_width
    blocks = [b[0].in_features for b in model.blocks]
    if kind == "jenn":  # h1 = D([j, h0]), h2 = D([j, h1])
        assert blocks == [297, 297 + 148, 297 + 148]
        assert model.out[0].in_features == 297 + 148
        assert sum(1 for name in model.embeddings if name.endswith("song_code")) == 3
    else:  # DenseNet-style: p2 = D([j, p0, p1]), out = Dense1([j, p0, p1, p2])
        assert blocks == [223, 223 + 148, 223 + 2 * 148]
        assert model.out[0].in_features == 223 + 3 * 148
        assert not any(name.endswith("song_code") for name in model.embeddings)
    assert model.embeddings["genre"].num_embeddings == 31  # shared by both genre columns (+ unknown)
    assert model.describe()["svd_dots"] == [
        ["member_component", "song_component"],
        ["member_artist_component", "artist_component"],
    ]
    assert len(model.describe()["svd_cosines"]) == 4


def test_joint_vector_ends_with_the_user_song_dot_product() -> None:
    inputs = NetInputs.from_manifest(small_manifest())
    hyper = NetHyper(k_user=8, k_cat=3, hidden=16)
    model = nets.build("jenn", inputs, _stats(inputs), hyper).eval()
    cat, num = _batch(inputs, 32)
    joint = model.joint(cat, num)
    u, s = joint[:, :8], joint[:, 8:16]
    assert joint.shape == (32, 8 + 8 + 16 + 1)
    torch.testing.assert_close(joint[:, -1], (u * s).sum(1))
    assert model(cat, num).shape == (32,)


def test_initialisation_follows_the_thesis_code() -> None:
    inputs = NetInputs.from_manifest(small_manifest())
    jenn = nets.build("jenn", inputs, _stats(inputs), NetHyper())
    felu = nets.build("felu_net", inputs, _stats(inputs), NetHyper())
    assert felu.embeddings["msno_code"].weight.abs().max() == 0
    assert 0 < jenn.embeddings["msno_code"].weight.abs().max() <= 0.005
    assert 0.005 < jenn.embeddings["genre"].weight.abs().max() <= 0.05
    assert jenn.embeddings["city"].weight.abs().max() <= 0.005
    linear = jenn.blocks[1][0]
    bound = math.sqrt(6 / (linear.in_features + linear.out_features))
    assert linear.weight.abs().max() <= bound
    assert linear.weight.abs().max() > 0.9 * bound
    assert linear.bias.abs().max() == 0
    assert isinstance(jenn.blocks[0][1], nn.ELU)
    assert jenn.dropout.p == 0.5


def test_text_variants_are_options() -> None:
    inputs = NetInputs.from_manifest(small_manifest())
    hyper = NetHyper(activation="relu", batchnorm=True, block_dropout=0.2, hidden=2048)
    model = nets.build("felu_net", inputs, _stats(inputs), hyper)
    block = [type(m) for m in model.blocks[2]]
    assert block == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout]
    assert model.blocks[2][0].out_features == 2048


def test_unknown_codes_and_missing_values_are_guarded() -> None:
    inputs = NetInputs.from_manifest(small_manifest())
    n = len(inputs.numeric)
    means = tuple(100.0 if name == "bd" else 0.5 for name in inputs.numeric_names)
    stats = Standardization(tuple(inputs.numeric_names), means, (4.0,) * n, tuple(m + 1 for m in means))
    model = nets.build("jenn", inputs, stats, NetHyper(k_user=4, k_cat=2, hidden=8)).eval()
    cat, num = _batch(inputs, 4)
    cat[0, :] = -1
    cat[1, :] = 10_000
    num[2, :] = float("nan")
    out = model(cat, num)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(model(cat[:1], num[:1]), model(cat[1:2], num[:1]))  # both -> the unknown row
    first_genre = inputs.categorical_names.index("first_genre_id")  # 4 codes, table shared with 6
    codes = model._codes(torch.tensor([[5 if j == first_genre else 0 for j in range(len(cat[0]))]]))
    assert codes[0, first_genre].item() == 6  # the shared table's unknown row, not genre 5
    x = model.standardize(torch.tensor([[108.0, *[float("nan")] * (len(inputs.numeric) - 1)]]))
    bd, member0 = inputs.numeric_names.index("bd"), inputs.numeric_names.index("member_component_0")
    assert x[0, bd].item() == pytest.approx(2.0)  # (108 - 100) / 4
    assert x[0, member0].item() == pytest.approx(1.5)  # raw SVD value: missing -> its fill
    song_length = inputs.numeric_names.index("song_length")
    assert x[0, song_length].item() == pytest.approx(0.25)  # missing -> fill 1.5, (1.5 - 0.5) / 4


def test_embedding_penalty_skips_the_user_id() -> None:
    inputs = NetInputs.from_manifest(small_manifest())
    model = nets.build("jenn", inputs, _stats(inputs), NetHyper(l2_embedding=0.1))
    expected = 0.1 * sum(
        model.embeddings[t].weight.pow(2).sum() for t in ("city", "genre", "song_code", "source_type")
    )
    torch.testing.assert_close(model.embedding_penalty(), expected)


def test_save_and_load_give_the_same_predictions(tmp_path) -> None:
    inputs = NetInputs.from_manifest(small_manifest())
    stats = _stats(inputs, mean=0.25, std=2.0)
    model = nets.build("felu_net", inputs, stats, NetHyper(k_user=4, k_cat=2, hidden=8)).eval()
    nets.save(tmp_path, model, stats)
    loaded = nets.load(tmp_path)
    cat, num = _batch(inputs, 16, seed=3)
    np.testing.assert_allclose(
        nets.predict(loaded, cat.numpy(), num.numpy()), nets.predict(model, cat.numpy(), num.numpy())
    )
    assert loaded.kind == "felu_net"
    assert loaded.hyper == model.hyper


@pytest.mark.parametrize(("kind", "context_width"), [("jenn", 303), ("felu_net", 270)])
def test_the_engine_manifest_feeds_the_thesis_branches(kind, context_width) -> None:
    """The catalogue's in_nn columns give the notebook's branch widths (FEATURES.md 3.2): user
    155, song 132, context 304 / 271 less one: registration_init_time, which the notebook fed to
    both the user and the context branch, enters once (user), as one manifest column has one
    entity. The context branch gets all 48 + 16 SVD components of the previous and next song."""
    rows = [
        {
            "name": s.name,
            "entity": s.entity,
            "categorical": s.codes is not None,
            "cardinality": 10 if s.codes else None,
            "in_nn": s.in_nn,
            "nn_fill": s.nn_fill,
            "svd_component": s.svd_component,
        }
        for s in catalogue()
    ]
    inputs = NetInputs.from_manifest(rows)
    model = nets.build(kind, inputs, _stats(inputs), NetHyper())
    assert model.user_tower[0][0].in_features == 155
    assert model.song_tower[0][0].in_features == 132
    assert model.context_tower[0].in_features == context_width
    groups = {g.name: len(g.columns) for g in inputs.svd_groups}
    assert groups["before_song_component"] == groups["after_song_component"] == 48
    assert groups["before_artist_component"] == groups["after_artist_component"] == 16
    assert len(model.describe()["svd_cosines"]) == 4
