"""The nets' training input: a run's standardised input shards, a training artifact of ``train-nets``.

:func:`prepare_inputs` reads ``silver.features`` and the manifest's ``in_nn`` rows of a profile,
adds ``eval_split``, computes the standardisation statistics
(:mod:`~relisten_spark.models.ddp.statistics`) and writes the rows the nets read as Parquet
shards under the run's work folder in the model store (:func:`work_folder`):
``<models.root>/.nets-work/<run id>/inputs/eval_split=<split>/*.parquet``, columns ``[idx, msno,
song_id, target, <categorical int>, <numeric float>]``, range-partitioned and sorted by
``idx`` into few large files with row groups of about ``nets.row_group_rows`` rows, which the
ranks stream (:mod:`relisten_spark.models.shards`). The model store is the storage every rank
reads on a cluster, like the registry.

The shards are written into a hidden staging folder and renamed to ``inputs`` when complete:
a killed run never leaves a half-written ``inputs`` folder, and no run reads another's (the
folder is named by the run id). The stage removes the run's work folder when it ends.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from relisten_spark.config import Config
from relisten_spark.errors import InputError
from relisten_spark.models import shards
from relisten_spark.models.ddp.statistics import fit_statistics
from relisten_spark.models.feature_inputs import manifest_rows, read_features, require_columns
from relisten_spark.models.nets import NetInputs, Standardization
from relisten_spark.splits import assign_eval_split

log = logging.getLogger(__name__)

KEYS = ("idx", "msno", "song_id", "target")
LABEL = "target"
WORK_DIR = ".nets-work"
INPUTS_DIR = "inputs"
_BYTES_PER_ROW_FIXED = 96  # idx, target, and the two raw id strings of an input row
_ROWS_PER_FILE = 1_000_000
_MIN_ROW_GROUP_BYTES = 1 << 16


@dataclass(frozen=True)
class PreparedInputs:
    """The nets' inputs, their statistics and the shards written for one run."""

    inputs: NetInputs
    stats: Standardization
    path: str  # the shards: <work folder>/inputs, partitioned by eval_split
    features_version: int
    rows: dict[str, int]  # all, fit, calib
    positive_rate: float  # of the fit rows


def work_folder(cfg: Config, run_id: str) -> Path:
    """``<models.root>/.nets-work/<run id>``: the training artifacts of one train-nets run."""
    return Path(cfg.models.root).absolute() / WORK_DIR / run_id


def read_inputs(spark: SparkSession, cfg: Config, profile: str) -> tuple[NetInputs, DataFrame, int]:
    """The manifest's nets inputs, ``silver.features`` of ``profile`` narrowed to the keys, ``split``
    and those inputs, and the features table version."""
    features, version = read_features(spark, cfg, profile)
    inputs = NetInputs.from_manifest(manifest_rows(spark, cfg, profile, "in_nn"), profile)
    names = [*inputs.categorical_names, *inputs.numeric_names]
    require_columns(features, names, profile)
    return inputs, features.select(*KEYS, "split", *names), version


def _write_shards(df: DataFrame, folder: Path, row_group_bytes: int) -> None:
    """Write ``df`` as Parquet partitioned by ``eval_split`` into ``folder``, atomically."""
    staging = folder.with_name(f".{folder.name}-staging-{uuid.uuid4().hex[:8]}")
    # a writer option reaches Parquet's Hadoop conf for this write only (no session conf to restore)
    writer = df.write.option("parquet.block.size", str(max(row_group_bytes, _MIN_ROW_GROUP_BYTES)))
    try:
        writer.partitionBy("eval_split").parquet(staging.as_uri())
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def prepare_inputs(spark: SparkSession, cfg: Config, profile: str, work: Path) -> PreparedInputs:
    """Statistics and the input shards of ``profile`` under ``work`` (module docstring)."""
    inputs, features, features_version = read_inputs(spark, cfg, profile)
    df = assign_eval_split(features, cfg.evaluation)
    moments, counts, positive_rate = fit_statistics(df, inputs)
    if counts["fit"] == 0 or counts["calib"] == 0:
        raise InputError(f"silver.features (profile {profile}) has no fit or no calib rows to train the nets")
    out = df.select(
        F.col("idx").cast("long"),
        F.col("msno").cast("string"),
        F.col("song_id").cast("string"),
        F.col(LABEL).cast("int"),
        "eval_split",
        *[F.col(c).cast("int") for c in inputs.categorical_names],
        *[F.col(c).cast("float") for c in inputs.numeric_names],
    )
    files = max(cfg.nets.num_processes, math.ceil(counts["all"] / _ROWS_PER_FILE))
    out = out.repartitionByRange(files, "idx").sortWithinPartitions("idx")
    width = _BYTES_PER_ROW_FIXED + 4 * (len(inputs.categorical) + len(inputs.numeric))
    folder = work / INPUTS_DIR
    _write_shards(out, folder, cfg.nets.row_group_rows * width)
    log.info("nets input shards %s: %s rows, %d bytes per row", folder, counts, width)
    stats = Standardization.from_moments(moments)
    return PreparedInputs(inputs, stats, str(folder), features_version, counts, positive_rate)


def row_groups(prepared: PreparedInputs, split: str) -> tuple[shards.RowGroup, ...]:
    """The Parquet row groups of one ``eval_split`` of the shards, in a stable order."""
    files = [str(p) for p in Path(prepared.path, f"eval_split={split}").glob("*.parquet")]
    return tuple(shards.list_row_groups(files))


def read_shards(spark: SparkSession, prepared: PreparedInputs) -> DataFrame:
    """The shards as a frame: ``[idx, msno, song_id, target, <inputs>, eval_split]``."""
    return spark.read.parquet(Path(prepared.path).as_uri())
