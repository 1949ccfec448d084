"""What the trainers read from the feature job: ``silver.features`` of one profile and the
manifest rows that choose a model's columns (``in_gbdt`` for LightGBM, ``in_nn`` for the nets)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from relisten_spark import lake
from relisten_spark.config import Config
from relisten_spark.errors import InputError


def features_path(cfg: Config) -> str:
    return lake.table_path(cfg.lake.root, "silver", "features")


def manifest_path(cfg: Config) -> str:
    return lake.table_path(cfg.lake.root, "silver", "feature_manifest")


def read_features(spark: SparkSession, cfg: Config, profile: str) -> tuple[DataFrame, int]:
    """``silver.features`` of ``profile`` and the table version it was read at."""
    path = features_path(cfg)
    if not lake.exists(path):
        raise InputError(f"no features table at {path} (run `relisten features` first)")
    version = lake.version(path)
    return lake.read(spark, path, where={"profile": profile}), version


def manifest_rows(spark: SparkSession, cfg: Config, profile: str, flag: str) -> list[dict[str, Any]]:
    """The ``silver.feature_manifest`` rows (schemas.MANIFEST, as dicts) of ``profile`` whose
    boolean column ``flag`` is true."""
    path = manifest_path(cfg)
    if not lake.exists(path):
        raise InputError(f"no feature manifest at {path} (run `relisten features` first)")
    manifest = lake.read(spark, path, where={"profile": profile}).where(F.col(flag))
    rows = [r.asDict() for r in manifest.collect()]  # one row per feature column: small
    if not rows:
        raise InputError(f"feature manifest {path} lists no {flag} column for profile '{profile}'")
    return rows


def require_columns(table: DataFrame, names: Iterable[str], profile: str) -> None:
    """Raise :class:`InputError` naming the first of ``names`` (manifest columns) missing from
    ``table`` (silver.features of ``profile``)."""
    present = set(table.columns)
    missing = [name for name in names if name not in present]
    if missing:
        raise InputError(
            f"silver.features (profile '{profile}') has no column '{missing[0]}' listed in the manifest"
        )
