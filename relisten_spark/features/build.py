"""``relisten features``: bronze -> silver.features, silver.feature_manifest and the SVD tables.

:func:`compute_features` builds one profile from bronze DataFrames (scoring reuses it with
appended ``split='score'`` events); :func:`run` reads bronze, computes ``cfg.features.profile``
and writes its partitions.

Data flow (one row per event throughout; ``_user`` / ``_song`` are the entity key codes):

* encode: key codes, the fitted label encoders, the member table and the song table;
* per-row families on the encoded events (time, neighbours, windows, counts, shares);
* per-entity tables (member / song static columns, SVD factors and, in the full profile, the
  BATCH aggregates) are small and broadcast-joined at the end, the song table three times
  (own, previous and next song).

Both profiles write the same column set (the full catalogue) so that they share one table
schema; columns outside a profile (FUTURE columns in serving) are typed nulls there and absent
from that profile's manifest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from relisten_spark import lake
from relisten_spark.config import Config
from relisten_spark.errors import InputError
from relisten_spark.features import add, encode, gbdt_extra, manifest, popularity, svd
from relisten_spark.features.neighbors import fill_gaps, fit_timestamp_fill
from relisten_spark.features.source_profile import add_source_probs, add_source_shares, user_source_shares
from relisten_spark.features.timeline import add_timestamp
from relisten_spark.features.windows import add_sequence_features, sequence_columns
from relisten_spark.splits import holdout_cutoff

log = logging.getLogger(__name__)

PROFILES = ("full", "serving")
KEY_COLUMNS = ("idx", "msno", "song_id", "split", "target", "profile")
# KKBOX's test / train row proportion: the serving clock scales the test segment with it, so that
# timestamps never depend on how many rows come later (on KKBOX it equals the full profile's).
KKBOX_TRAIN_ROWS, KKBOX_TEST_ROWS = 7_377_418, 2_556_790
SVD_TABLES = ("svd_member", "svd_song", "svd_member_artist", "svd_artist", "svd_values")
# serving: per-row (cumulative) song columns copied from the previous event; the full profile
# joins its per-song values from the song table
ROW_SONG_COLUMNS = ("song_timestamp_mean", "song_timestamp_std")
STEP8_SONG_COLUMNS = ("song_length", "artist_song_cnt", "artist_rec_cnt", "song_rec_cnt", "yy")


@dataclass(frozen=True)
class BronzeFrames:
    """The bronze inputs (schemas.EVENTS, MEMBERS, SONGS, SONG_EXTRA); ``events`` may contain
    ``split='score'`` rows (hypothetical events, all at one idx after the last real one)."""

    events: DataFrame
    members: DataFrame
    songs: DataFrame
    song_extra: DataFrame


@dataclass
class FeatureSet:
    """One profile's outputs. ``features``: keys + every catalogue column; ``manifest``:
    schemas.MANIFEST rows of the profile's columns; ``svd``: the five SVD tables (with
    ``profile``). The frames read persisted intermediates: call :meth:`release` when done."""

    features: DataFrame
    manifest: DataFrame
    svd: dict[str, DataFrame]
    cardinalities: dict[str, int]
    timings: dict[str, float]
    held: list[Any] = field(default_factory=list)

    def release(self) -> None:
        """Unpersist every intermediate this feature set holds."""
        for item in self.held:
            item.unpersist()
        self.held.clear()


class _Clock:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        log.info("features: %s ...", name)
        yield
        self.timings[name] = round(time.perf_counter() - started, 2)
        log.info("features: %s done in %.1f s", name, self.timings[name])


def serving_clock(n_train: int) -> int:
    """The ``n_total`` passed to the row-time map in the serving profile."""
    return n_train + round(n_train * KKBOX_TEST_ROWS / KKBOX_TRAIN_ROWS)


def flag_fit(keys: DataFrame, fit_ids: DataFrame, column: str) -> DataFrame:
    """``keys`` + ``_fit`` (bool): the key's raw ``column`` value occurs in ``fit_ids``."""
    marked = fit_ids.select(column).distinct().withColumn("_fit", F.lit(True))
    return keys.join(F.broadcast(marked), column, "left").fillna(False, ["_fit"])


def compute_features(spark: SparkSession, frames: BronzeFrames, profile: str, cfg: Config) -> FeatureSet:
    """Compute ``profile`` ('full' | 'serving') from bronze frames.

    Returns the features frame (keys ``idx, msno, song_id`` (raw ids), ``split, target,
    profile``, then the catalogue columns of :func:`manifest.catalogue`, one row per event),
    its manifest and the SVD tables. Serving: every feature of the row at ``idx = i`` uses
    only rows with ``idx < i`` plus static metadata and fits on the fit rows (train rows before
    the holdout cutoff); 'score' rows are never fit on and never change another row's features.
    """
    if profile not in PROFILES:
        raise InputError(f"features.profile must be one of {PROFILES}, got {profile!r}")
    serving = profile == "serving"
    shape = manifest.Shape(tuple(cfg.features.windows), cfg.features.svd_song_k, cfg.features.svd_artist_k)
    clock = _Clock()
    held: list[Any] = []

    def keep(df: DataFrame) -> DataFrame:
        df = df.persist(StorageLevel.MEMORY_AND_DISK)
        held.append(df)
        return df

    events = keep(
        frames.events.select(
            *[F.col(c) for c in ("idx", "msno", "song_id", *encode.SOURCE_COLUMNS, "target", "split")]
        )
    )
    with clock.phase("encode"):
        counts = events.agg(
            F.sum((F.col("split") == "train").cast("long")).alias("train"),
            F.sum((F.col("split") == "test").cast("long")).alias("test"),
        ).first()
        n_train, n_test = int(counts["train"] or 0), int(counts["test"] or 0)
        if n_train < 2:
            raise InputError(f"bronze.events has {n_train} train rows; the features need at least 2")
        cutoff = holdout_cutoff(events, cfg.evaluation) if serving else None
        fit = encode.fit_rows(profile, cutoff)
        keys = encode.key_codes(events, {"_user": "msno", "_song": "song_id"})
        user_keys, song_keys = keys["_user"], keys["_song"]
        fit_events = events.where(fit)
        users = flag_fit(user_keys, fit_events, "msno").localCheckpoint()
        songs = flag_fit(song_keys, fit_events, "song_id").localCheckpoint()
        event_codes = encode.fit_event_codes(events, fit)
        ev = keep(encode.encode_events(events, user_keys, song_keys, event_codes))
        member_t, member_codes = encode.member_table(users, frames.members)
        song_t, song_codes = encode.song_table(songs, frames.songs, frames.song_extra)
        member_t = member_t.join(user_keys.withColumnRenamed("msno", "_raw_msno"), "_user").localCheckpoint()
        song_t = song_t.withColumnRenamed("song_id", "_raw_song").localCheckpoint()
        source_codes = add.fit_source_codes(ev, fit)
    cardinalities = {
        **{c: codes.cardinality for c, codes in event_codes.sources.items()},
        "source": source_codes.cardinality,
        **{
            name: getattr(member_codes, name).cardinality
            for name in ("msno_code", "city", "gender", "registered_via")
        },
        **{
            name: getattr(song_codes, name).cardinality
            for name in ("song_code", "artist_name", "composer", "lyricist", "genre", "language", "cc", "xxx")
        },
    }

    with clock.phase("svd"):
        known_artist = F.col("artist_name").between(1, song_codes.artist_name.size)
        song_artist = song_t.where(known_artist).select(F.col("_song").alias("song_id"), "artist_name")
        factors = svd.fit_svd_factors(
            spark,
            ev,
            song_artist,
            fit if serving else None,
            cfg.features.svd_song_k,
            cfg.features.svd_artist_k,
            cfg.features.svd_oversample,
            cfg.features.svd_power_iters,
            cfg.features.seed,
        )
        held.append(factors)

    with clock.phase("plan"):
        song_attrs = ["artist_name", "first_genre_id", "xxx", "language", "song_length", "yy"]
        count_keys = [k for k in popularity.SONG_KEYS.values() if k not in song_attrs] if serving else []
        lookup = song_t.select(F.col("_song").alias("_s"), *song_attrs, *count_keys)
        base = ev.join(F.broadcast(lookup), ev["song_id"] == F.col("_s"), "left").drop("_s")
        base = add.add_source(base, source_codes)
        n_total = serving_clock(n_train) if serving else n_train + n_test
        if serving:
            rows = popularity.add_song_counts_cumulative(base)
            static_fill = add.column_means(
                song_t.join(songs.where("_fit").select("_song"), "_song"), ["song_length", "yy"]
            )
            row_fill = add.column_means(
                rows.where(fit), ["artist_song_cnt", "artist_rec_cnt", "song_rec_cnt"]
            )
            rows = add.add_nn_values(rows, {**static_fill, **row_fill})
            song_batch = user_batch = basis = None
        else:
            counted = base.where(F.col("split").isin("train", "test"))
            song_batch = popularity.song_counts_batch(song_t, counted).localCheckpoint()
            per_song = song_t.select("_song", "song_length", "yy").join(song_batch, "_song")
            nn_fill = add.column_means(per_song, STEP8_SONG_COLUMNS)
            batch_counts = song_batch.select(
                F.col("_song").alias("_s"), "artist_song_cnt", "artist_rec_cnt", "song_rec_cnt"
            )
            with_counts = base.join(F.broadcast(batch_counts), base["song_id"] == F.col("_s"), "left").drop(
                "_s"
            )
            nn = add.add_nn_values(with_counts, nn_fill).drop(
                "artist_song_cnt", "artist_rec_cnt", "song_rec_cnt"
            )
            nn = keep(nn.withColumn("_basis", add.tp_basis(nn)))
            basis = F.col("_basis")
            user_batch = popularity.user_counts_batch(counted).join(
                add.member_add_batch(nn, basis), "_user", "full"
            )
            step8_only = [c for c in add.MEMBER_ADD_VALUES.values() if c != "_nn_yy"]
            rows = nn.drop("song_length", "yy", *step8_only)
        rows = add_timestamp(rows, n_train, n_total)
        share_base = None
        if serving:
            rows = _serving_windows(rows, shape, fit_timestamp_fill(rows, fit), factors)
        else:
            # one sort per key on the narrow frame; song-keyed last so that the SVD dot join
            # below finds the rows already partitioned by song
            song_batch = song_batch.join(song_time_stats(rows), "_song", "left").localCheckpoint()
            share_base = rows  # join-free: the BATCH share tables are counted from it
            rows = add_sequence_features(rows, list(shape.windows), include_after=True, serving=False)
            # the song's own time statistics come from the song table as its neighbours' do;
            # dropping the per-row copies prunes their window expressions from the plan
            rows = rows.drop(*ROW_SONG_COLUMNS)
            shares = user_source_shares(
                ev.where(F.col("split").isin("train", "test")), manifest.SOURCE_SHARE_CODES
            )
            user_batch = user_batch.join(
                shares.withColumnRenamed("msno", "_user"), "_user", "left"
            ).localCheckpoint()
            rows = add_source_probs(rows, serving, counted=share_base)
            rows = add.add_shares(rows, serving, basis, share_base)
            rows = svd.add_svd_dots(rows, factors)
        user_table = _user_table(member_t, factors, user_batch)
        song_table = _song_table(song_t, factors, song_batch)
        features = _assemble(rows, user_table, song_table, shape, profile)

    specs = manifest.profile_specs(profile, shape)
    manifest_df = manifest.manifest_frame(spark, specs, features.schema, cardinalities, profile)
    svd_tables = _svd_tables(spark, factors, member_t, song_t, profile)
    return FeatureSet(features, manifest_df, svd_tables, cardinalities, clock.timings, held)


def _serving_windows(
    rows: DataFrame, shape: manifest.Shape, fill: dict[str, float], factors: svd.SvdFactors
) -> DataFrame:
    """The serving profile's cumulative families, ordered so that the frame is narrow while it is
    sorted by other keys and every user-keyed window shares one sort at the end: the SVD dots
    (a join by song), P(x | user) and P(c | song) ((entity, value) windows), the member_add
    artist marker, the song-keyed windows, then all user-keyed ones (user counts, member_add,
    the previous event and its per-row song values, window and till-now counts, time
    statistics, the source distribution). Each shuffle carries every column added before it: in
    the order of the families' modules (shares and member_add last, user and song keys
    alternating) the 9.9M-event run filled ~45 GB of free disk with shuffle files and failed.
    """
    rows = svd.add_svd_dots(rows, factors)
    rows = add.add_shares(rows, serving=True, basis=None)
    rows = add_source_probs(rows, serving=True)
    windows = shape.windows
    rows = rows.select("*", *sequence_columns("song_id", "song", windows, include_after=False, serving=True))
    rows = add.add_member_add_cumulative(rows)
    rows = popularity.add_user_counts_cumulative(rows)
    rows = rows.select("*", *sequence_columns("msno", "msno", windows, include_after=False, serving=True))
    per_row_song = [*ROW_SONG_COLUMNS, *popularity.count_columns(popularity.SONG_KEYS)]
    rows = gbdt_extra.add_neighbor_values(rows, _previous_row_stems(shape, per_row_song), include_after=False)
    rows = add_source_shares(rows, serving=True, codes=manifest.SOURCE_SHARE_CODES)
    return fill_gaps(rows, include_after=False, fill=fill)


def song_time_stats(rows: DataFrame) -> DataFrame:
    """``[_song, song_timestamp_mean, song_timestamp_std]`` over all rows of each song: the
    full profile's per-song values, joined for the previous and next song."""
    return rows.groupBy(F.col("song_id").alias("_song")).agg(
        F.avg("timestamp").alias("song_timestamp_mean"),
        F.stddev_samp("timestamp").alias("song_timestamp_std"),
    )


def _previous_row_stems(shape: manifest.Shape, per_row: list[str]) -> list[str]:
    """The previous song's columns (serving) that are copied from the previous row: those of
    ``per_row``, in catalogue order."""
    stems = [name.removeprefix("before_") for name in manifest._neighbour_names("before", shape)]
    return [stem for stem in stems if stem in per_row]


def _user_table(member_t: DataFrame, factors: svd.SvdFactors, batch: DataFrame | None) -> DataFrame:
    """One row per user key: member static columns, SVD user factors, BATCH aggregates (full)."""
    table = member_t.join(factors.member.withColumnRenamed("msno", "_user"), "_user", "left").join(
        factors.member_artist.withColumnRenamed("msno", "_user"), "_user", "left"
    )
    if batch is not None:
        table = table.join(batch, "_user", "left")
    return table


def _song_table(song_t: DataFrame, factors: svd.SvdFactors, batch: DataFrame | None) -> DataFrame:
    """One row per song key: static song columns, SVD song and artist factors, BATCH counts (full)."""
    table = song_t.join(factors.song.withColumnRenamed("song_id", "_song"), "_song", "left").join(
        F.broadcast(factors.artist), "artist_name", "left"
    )
    if batch is not None:
        table = table.join(batch, "_song", "left")
    return table


def _assemble(
    rows: DataFrame, user_table: DataFrame, song_table: DataFrame, shape: manifest.Shape, profile: str
) -> DataFrame:
    """Join the per-entity tables onto the per-row frame and select the output columns. The
    lookups are packed (:func:`~relisten_spark.features.gbdt_extra.packed_lookup`): the ~450
    columns are copied once, by the final projection."""
    serving = profile == "serving"
    present = set(rows.columns)
    user_cols = [c for c in user_table.columns if c not in present and c != "_user"]
    own_cols = [c for c in song_table.columns if c not in present and c != "_song"]
    present |= {*user_cols, *own_cols}
    lookups = [("_lu", user_table, "msno", "_user", {c: c for c in user_cols})]
    lookups.append(("_ls", song_table, "song_id", "_song", {c: c for c in own_cols}))
    for side in ["before"] if serving else ["before", "after"]:
        wanted = {name[len(side) + 1 :] for name in manifest._neighbour_names(side, shape)}
        stems = [c for c in song_table.columns if c in wanted and f"{side}_{c}" not in present]
        stems += ["artist_name", "song_code"]
        neighbour = {f"{side}_{c}": c for c in stems}
        lookups.append((f"_l{side}", song_table, f"{side}_song_id", "_song", neighbour))
    df, unpacked = rows, []
    for tag, table, key, table_key, columns in lookups:
        df, unpack = gbdt_extra.packed_lookup(df, table, key, table_key, columns, tag)
        unpacked += unpack
    df = df.select(*rows.columns, *unpacked)
    df = df.select("*", *gbdt_extra.flag_columns(include_after=not serving), *gbdt_extra.time_columns())
    keys = [
        F.col("idx").cast("long").alias("idx"),
        F.col("_raw_msno").alias("msno"),
        F.col("_raw_song").alias("song_id"),
        F.col("split"),
        F.col("target").cast("int").alias("target"),
        F.lit(profile).alias("profile"),
    ]
    return df.select(*keys, *output_columns(shape, profile))


def output_columns(shape: manifest.Shape, profile: str) -> list[Column]:
    """Every catalogue column in catalogue order, cast to its dtype: the profile's columns from
    the frame, the others as typed nulls (both profiles share one table schema)."""
    present = {s.name for s in manifest.profile_specs(profile, shape)}
    return [
        (F.col(spec.name) if spec.name in present else F.lit(None)).cast(spec.dtype).alias(spec.name)
        for spec in manifest.catalogue(shape)
    ]


def _svd_tables(
    spark: SparkSession, factors: svd.SvdFactors, member_t: DataFrame, song_t: DataFrame, profile: str
) -> dict[str, DataFrame]:
    """The five SVD tables of COMMON.md, keyed by raw ids (artist by code), with ``profile``."""
    tag = F.lit(profile).alias("profile")
    users = member_t.select("_user", F.col("_raw_msno").alias("msno"))
    songs = song_t.select("_song", F.col("_raw_song").alias("song_id"))

    def by_user(frame: DataFrame) -> DataFrame:
        joined = frame.withColumnRenamed("msno", "_user").join(users, "_user")
        return joined.select(tag, "msno", *[c for c in frame.columns if c != "msno"])

    song = factors.song.withColumnRenamed("song_id", "_song").join(songs, "_song")
    return {
        "svd_member": by_user(factors.member),
        "svd_song": song.select(tag, "song_id", *[c for c in factors.song.columns if c != "song_id"]),
        "svd_member_artist": by_user(factors.member_artist),
        "svd_artist": factors.artist.select(tag, *factors.artist.columns),
        "svd_values": factors.values_frame(spark).select(tag, "matrix", "component", "value"),
    }


def read_bronze(spark: SparkSession, cfg: Config) -> BronzeFrames:
    """The four bronze tables of ``cfg.lake.root``."""
    root = cfg.lake.root
    tables = {}
    for name in ("events", "members", "songs", "song_extra"):
        path = lake.table_path(root, "bronze", name)
        if not lake.exists(path):
            raise InputError(f"bronze table {path} not found: run `relisten ingest` first")
        tables[name] = lake.read(spark, path)
    return BronzeFrames(**tables)


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    """``relisten features``: compute ``cfg.features.profile`` and write its partitions of
    silver.features, silver.feature_manifest and the SVD tables."""
    profile = cfg.features.profile
    started = time.perf_counter()
    result = compute_features(spark, read_bronze(spark, cfg), profile, cfg)
    root = cfg.lake.root
    try:
        clock = _Clock()
        clock.timings.update(result.timings)
        write = {"partition_by": ["profile"], "replace_where": {"profile": profile}}
        with clock.phase("write features"):
            lake.write(
                spark,
                result.features,
                lake.table_path(root, "silver", "features"),
                options=lake.wide_table_options(KEY_COLUMNS, ["msno", "song_id", "split", "profile"]),
                **write,
            )
        with clock.phase("write manifest and svd"):
            lake.write(spark, result.manifest, lake.table_path(root, "silver", "feature_manifest"), **write)
            for name, frame in result.svd.items():
                lake.write(spark, frame, lake.table_path(root, "silver", name), **write)
        rows = lake.read(
            spark, lake.table_path(root, "silver", "features"), where={"profile": profile}
        ).count()
    finally:
        result.release()
    columns = result.manifest.count()
    return {
        "profile": profile,
        "rows": rows,
        "columns": columns,
        "seconds": round(time.perf_counter() - started, 1),
        "phase_seconds": clock.timings,
    }
