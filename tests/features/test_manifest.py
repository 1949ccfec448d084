"""The manifest as a typed contract: horizons and entities are enums, every net input carries its
branch and fill (no prose to parse), the neighbour song columns are listed once, and the thesis's
388-column LightGBM list is package data."""

from __future__ import annotations

import ast
from importlib import resources
from pathlib import Path

import pytest

from relisten_spark import schemas
from relisten_spark.features import catalogue as catalogue_module
from relisten_spark.features.catalogue import SONG_TIME_STATS, catalogue, gbdt_columns, neighbour_stems
from relisten_spark.features.manifest import manifest_frame, profile_specs
from relisten_spark.features.spec import Entity, Fill, Horizon, Shape

PACKAGE = Path(catalogue_module.__file__).resolve().parents[1]
SHAPES = [Shape(), Shape(windows=(10, 500), k_song=8, k_artist=4)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("profile", ["full", "serving"])
def test_horizon_and_entity_are_enums(profile, shape) -> None:
    specs = profile_specs(profile, shape)
    assert all(isinstance(s.horizon, Horizon) and isinstance(s.entity, Entity) for s in specs)
    horizons = {s.horizon for s in specs}
    if profile == "full":
        assert horizons == set(Horizon)
    else:
        assert horizons == {Horizon.STATIC, Horizon.ROW, Horizon.PAST}


@pytest.mark.parametrize("profile", ["full", "serving"])
def test_every_net_input_carries_its_branch_and_fill(profile) -> None:
    """The nets read entity (branch), nn_fill and svd_component; no note has to be parsed."""
    specs = profile_specs(profile)
    nets = [s for s in specs if s.in_nn]
    assert nets
    for s in nets:
        assert isinstance(s.entity, Entity), s.name
        if s.codes is None:
            assert isinstance(s.nn_fill, Fill), s.name
        else:
            assert s.nn_fill is None, s.name  # categoricals: unseen and missing codes share a row
    assert all(s.nn_fill is None for s in specs if not s.in_nn)
    assert not [s.name for s in specs if "nn_fill" in s.note]
    components = {s.name: s.svd_component for s in specs if s.svd_component is not None}
    assert all(name.endswith(f"_component_{j}") for name, j in components.items())
    assert {s.name for s in nets if s.family.startswith("svd_")} <= set(components)


def test_fill_rules_follow_the_thesis_tables() -> None:
    fills = {s.name: s.nn_fill for s in catalogue() if s.in_nn}
    assert fills["bd"] == Fill.USER_MEAN
    assert fills["msno_timestamp_std"] == Fill.USER_MIN
    assert fills["msno_song_length_mean"] == fills["artist_msno_cnt"] == Fill.ZERO
    assert fills["song_length"] == fills["artist_component_3"] == Fill.SONG_MEAN
    assert fills["before_artist_component_3"] == fills["timestamp"] == Fill.MEAN


@pytest.mark.parametrize("shape", SHAPES)
def test_neighbour_columns_are_the_catalogues(shape) -> None:
    for side, family in (("before", "previous_song"), ("after", "next_song")):
        listed = [f"{side}_{stem}" for stem in neighbour_stems(side, shape)]
        copies = [s.name for s in catalogue(shape) if s.family == family]
        assert sorted(listed) == sorted(copies)
        assert len(set(listed)) == len(listed)
    with pytest.raises(ValueError, match="'before' or 'after'"):
        neighbour_stems("previous", shape)


def _string_sequences(tree: ast.AST) -> list[set[str]]:
    return [
        {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
        for node in ast.walk(tree)
        if isinstance(node, ast.Tuple | ast.List | ast.Set)
    ]


def test_the_neighbour_song_list_is_written_once() -> None:
    """No module but the catalogue spells out the previous / next song's column list."""
    stems = [s for s in neighbour_stems("before", Shape(k_song=0, k_artist=0)) if s not in SONG_TIME_STATS]
    spellings = [set(stems), *[{f"{side}_{stem}" for stem in stems} for side in ("before", "after")]]
    copies = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        for strings in _string_sequences(ast.parse(path.read_text()))
        if any(spelling <= strings for spelling in spellings)
    ]
    assert copies == ["features/catalogue.py"]


def test_the_thesis_lightgbm_list_is_package_data() -> None:
    text = (resources.files("relisten_spark") / "resources" / "thesis_lightgbm_388.txt").read_text("utf-8")
    assert "Mike-cloud-17/Masters_Diploma_Music_Recomendation_System" in text
    cols = gbdt_columns()
    assert len(cols) == len(set(cols)) == 388
    assert cols[:3] == ["source_system_tab", "source_screen_name", "source_type"]
    assert cols[-3:] == ["time_spent", "time_left", "duration"]
    names = [s.name for s in catalogue()]
    assert names[:388] == cols  # the full profile builds every listed column, first, in order


@pytest.mark.spark
def test_manifest_rows_write_the_enum_values(spark) -> None:
    specs = [s for s in catalogue() if s.name in ("bd", "city", "member_component_5", "after_timestamp")]
    frame = manifest_frame(spark, specs, schemas.MANIFEST, {"city": 21}, "full")
    assert frame.schema == schemas.MANIFEST
    got = {r["name"]: r for r in frame.collect()}
    assert set(got) == {"bd", "city", "member_component_5", "after_timestamp"}
    row = {f: got["bd"][f] for f in ("horizon", "entity", "in_nn", "nn_fill", "svd_component")}
    assert row == {
        "horizon": "STATIC",
        "entity": "user",
        "in_nn": True,
        "nn_fill": "user_mean",
        "svd_component": None,
    }
    assert (got["city"]["cardinality"], got["city"]["nn_fill"]) == (21, None)
    assert (got["member_component_5"]["svd_component"], got["member_component_5"]["nn_fill"]) == (5, "mean")
    assert (got["after_timestamp"]["horizon"], got["after_timestamp"]["in_nn"]) == ("FUTURE", True)
