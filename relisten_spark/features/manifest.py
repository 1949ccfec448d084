"""The feature manifest: the columns of one profile (:func:`profile_specs`) and their
silver.feature_manifest rows (:func:`manifest_frame`).

* full profile: the :func:`~relisten_spark.features.catalogue.catalogue`;
* serving profile: BATCH columns become cumulative over earlier rows (horizon PAST), FUTURE
  columns are absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from relisten_spark import schemas
from relisten_spark.features.catalogue import SERVING_CUMULATIVE_NOTE, catalogue, gbdt_columns
from relisten_spark.features.spec import FeatureSpec, Horizon, Shape


def _serving(spec: FeatureSpec) -> FeatureSpec:
    """A BATCH column of the serving profile: PAST, its note saying how (SVD factors are fit on
    the fit rows; the note already says so)."""
    if spec.family.startswith("svd"):
        return replace(spec, horizon=Horizon.PAST)
    note = f"{spec.note}; {SERVING_CUMULATIVE_NOTE}" if spec.note else SERVING_CUMULATIVE_NOTE
    return replace(spec, horizon=Horizon.PAST, note=note)


def profile_specs(profile: str, shape: Shape = Shape()) -> list[FeatureSpec]:
    """The columns of ``profile``: full = the catalogue; serving = without FUTURE columns,
    BATCH re-tagged PAST (cumulative over earlier rows)."""
    specs = catalogue(shape)
    if profile == "full":
        return specs
    return [_serving(s) if s.horizon == Horizon.BATCH else s for s in specs if s.horizon != Horizon.FUTURE]


def manifest_frame(
    spark: SparkSession,
    specs: list[FeatureSpec],
    schema: T.StructType,
    cardinalities: Mapping[str, int],
    profile: str,
) -> DataFrame:
    """The manifest rows (schemas.MANIFEST) of ``specs``; ``dtype`` from ``schema`` (the written
    features frame), ``cardinality`` from ``cardinalities[spec.codes]``."""
    gbdt = set(gbdt_columns())
    types = {f.name: f.dataType.simpleString() for f in schema.fields}
    rows = [
        (
            s.name,
            s.family,
            types.get(s.name, s.dtype),
            s.horizon.value,
            profile,
            s.entity.value,
            s.codes is not None,
            None if s.codes is None else int(cardinalities[s.codes]),
            s.name in gbdt,
            s.in_nn,
            s.note or None,
            None if s.nn_fill is None else s.nn_fill.value,
            s.svd_component,
        )
        for s in specs
    ]
    return spark.createDataFrame(rows, schemas.MANIFEST)
