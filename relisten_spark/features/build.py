"""``relisten features``: bronze -> silver.features, silver.feature_manifest, the SVD tables and
silver.label_codes.

:func:`compute_features` builds one profile from bronze DataFrames (the definition of the serving
features of appended ``split='score'`` events); :func:`run` reads bronze, computes
``cfg.features.profile`` and writes its partitions.

Data flow (one row per event throughout; ``_user`` / ``_song`` are the entity key codes):

* encode (:mod:`~relisten_spark.features.inputs`): key codes, the fitted label encoders, the
  member table and the song table;
* svd (:mod:`~relisten_spark.features.embeddings`): the factor tables, fit on the fit rows;
* the profile's builder (:mod:`~relisten_spark.features.full`,
  :mod:`~relisten_spark.features.serving`): per-row families on the encoded events, then the
  assembly (:mod:`~relisten_spark.features.assemble`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from relisten_spark import lake
from relisten_spark.commits import StageRun
from relisten_spark.config import Config
from relisten_spark.errors import InputError
from relisten_spark.features import label_codes
from relisten_spark.features.assemble import config_shape
from relisten_spark.features.bronze import BronzeFrames, bronze_versions, read_bronze
from relisten_spark.features.embeddings import SVD_TABLES, SvdFactors, fit_svd_factors, svd_tables
from relisten_spark.features.full import full_features
from relisten_spark.features.inputs import EncodedInputs, encode_inputs
from relisten_spark.features.manifest import manifest_frame, profile_specs
from relisten_spark.features.serving import serving_features
from relisten_spark.runtime import Held, PhaseTimer

log = logging.getLogger(__name__)

PROFILES = ("full", "serving")
KEY_COLUMNS = ("idx", "msno", "song_id", "split", "target", "profile")
# the silver tables of a profile, in their commit order
OUTPUTS = ("features", "feature_manifest", *SVD_TABLES, label_codes.TABLE)


@dataclass
class FeatureSet:
    """One profile's outputs. ``features``: keys + every catalogue column; ``manifest``:
    schemas.MANIFEST rows of the profile's columns; ``tables``: the profile's other silver tables
    (the five SVD tables and label_codes, with ``profile``). The frames read persisted
    intermediates (``held``): call :meth:`release` when done."""

    features: DataFrame
    manifest: DataFrame
    tables: dict[str, DataFrame]
    cardinalities: dict[str, int]
    timings: dict[str, float]
    held: Held

    def release(self) -> None:
        """Unpersist every intermediate this feature set holds."""
        self.held.release()


def compute_features(spark: SparkSession, frames: BronzeFrames, profile: str, cfg: Config) -> FeatureSet:
    """Compute ``profile`` ('full' | 'serving') from bronze frames.

    Returns the features frame (keys ``idx, msno, song_id`` (raw ids), ``split, target,
    profile``, then the catalogue columns, one row per event), its manifest and the other
    silver tables. Serving: every feature of the row at ``idx = i`` uses only rows with
    ``idx < i`` plus static metadata and fits on the fit rows (train rows before the holdout
    cutoff); 'score' rows are never fit on and never change another row's features.
    """
    if profile not in PROFILES:
        raise InputError(f"features.profile must be one of {PROFILES}, got {profile!r}")
    shape = config_shape(cfg)
    timer, held = PhaseTimer("features"), Held()
    with timer.phase("encode"):
        inputs = encode_inputs(frames, profile, cfg, held)
    with timer.phase("svd"):
        factors = _fit_factors(spark, inputs, profile, cfg)
        held.keep(factors)
    with timer.phase("plan"):
        if profile == "serving":
            features = serving_features(inputs, factors, shape)
        else:
            features = full_features(inputs, factors, shape, held)
    cardinalities = {name: codes.cardinality for name, codes in inputs.codes.items()}
    specs = profile_specs(profile, shape)
    manifest_df = manifest_frame(spark, specs, features.schema, cardinalities, profile)
    users = inputs.member_t.select("_user", F.col("_raw_msno").alias("msno"))
    songs = inputs.song_t.select("_song", F.col("_raw_song").alias("song_id"))
    tables = svd_tables(spark, factors, users, songs, profile)
    tables[label_codes.TABLE] = label_codes.codes_frame(spark, inputs.codes, profile)
    return FeatureSet(features, manifest_df, tables, cardinalities, timer.seconds, held)


def _fit_factors(spark: SparkSession, inputs: EncodedInputs, profile: str, cfg: Config) -> SvdFactors:
    """The SVD factors of the profile's fit rows (full: every row, the thesis's BATCH fit)."""
    known_artist = F.col("artist_name").between(1, inputs.codes["artist_name"].size)
    song_artist = inputs.song_t.where(known_artist).select(F.col("_song").alias("song_id"), "artist_name")
    features = cfg.features
    return fit_svd_factors(
        spark,
        inputs.ev,
        song_artist,
        inputs.fit if profile == "serving" else None,
        features.svd_song_k,
        features.svd_artist_k,
        features.svd_oversample,
        features.svd_power_iters,
        features.seed,
    )


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    """``relisten features``: compute ``cfg.features.profile`` and write its partitions of
    silver.features, silver.feature_manifest, the SVD tables and silver.label_codes."""
    profile = cfg.features.profile
    started = time.perf_counter()
    versions = bronze_versions(cfg)
    inputs = {f"bronze.{name}": v for name, v in versions.items()}
    out = StageRun(spark, cfg, "silver", "features", OUTPUTS, scope=f"profile={profile}", inputs=inputs)
    skipped = out.unchanged()
    if skipped:
        log.info("features [%s]: %s", profile, skipped)
        return {"run_id": out.run_id, "profile": profile, "skipped": skipped}
    result = compute_features(spark, read_bronze(spark, cfg, versions), profile, cfg)
    timer = PhaseTimer("features", result.timings)
    write = {"partition_by": ["profile"], "replace_where": {"profile": profile}}
    try:  # every table staged, then committed together (relisten_spark.commits)
        with out:
            with timer.phase("write features"):
                options = lake.wide_table_options(KEY_COLUMNS, ["msno", "song_id", "split", "profile"])
                out.prepare("features", result.features, options=options, **write)
            with timer.phase("write manifest, svd and label codes"):
                out.prepare("feature_manifest", result.manifest, **write)
                for name, frame in result.tables.items():
                    out.prepare(name, frame, **write)
            with timer.phase("commit"):
                out.commit()
        rows = lake.read(spark, out.paths["features"], where={"profile": profile}).count()
    finally:
        result.release()
    return {
        "run_id": out.run_id,
        "profile": profile,
        "rows": rows,
        "columns": result.manifest.count(),
        "seconds": round(time.perf_counter() - started, 1),
        "phase_seconds": timer.seconds,
    }
