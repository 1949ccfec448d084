"""Serving features of candidate pairs "now", from end-of-log state tables.

A candidate of ``relisten score`` is a hypothetical event at ``idx = N`` (one after the last
event of the log) of (user, song, surface context). Its serving features are the feature job's
(:func:`~relisten_spark.features.build.compute_features`, profile ``serving``) for such a row:
every PAST aggregate is over the whole log. Rather than re-running the feature job over the log
with the candidates appended, this module reads the log's own serving rows (the ``serving``
partition of ``silver.features``, one row per event with the row's cumulative values) and the
bronze tables, and aggregates them once into:

* the **user state** (one row per user): member static columns, SVD user factors, counts and
  window counts, time statistics, the source distribution, member_add, the per-context source
  counts and the user's last event (its codes, time and the song columns the ``before_*``
  features copy);
* the **song state** (one row per candidate song): song static columns, SVD song and artist
  factors, the popularity counters over the whole log, window counts, time statistics and the
  per-context source counts;
* (user, value) counts for P(song attribute | user), joined on the narrow pair frame, as are
  the SVD dot products.

The pairs are then clustered by user (a shuffle of the narrow frame only) and both states are
broadcast-joined, so the wide feature rows are built in the scoring tasks and never shuffled.
``tests/scoring/test_snapshot.py`` checks every serving column against compute_features with
the candidates appended (the definition). Candidate songs are songs of the log
(:func:`~relisten_spark.scoring.surfaces.song_catalog`); a user without events (a member only)
gets the features of a first event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from relisten_spark import lake
from relisten_spark.config import Config
from relisten_spark.errors import InputError
from relisten_spark.features import add, encode, gbdt_extra, manifest, popularity
from relisten_spark.features.build import BronzeFrames, flag_fit, output_columns, serving_clock
from relisten_spark.features.source_profile import SOURCE_COLUMNS, share_name
from relisten_spark.features.svd import SvdFactors, add_svd_dots
from relisten_spark.features.timeline import timestamp_column
from relisten_spark.splits import holdout_cutoff

PROFILE = "serving"
# P(song attribute | user): output -> the value column (rows of the log and candidate songs)
USER_VALUE_SHARES = {name: value for name, value in add.USER_SHARES.items() if value != "source"}
# previous-event columns that are not copies of a song column of the user's last event
_NOT_COPIED = (
    "before_timestamp",
    "before_source_type",
    "before_source_screen_name",
    "before_type_same",
    "before_artist_same",
)


@dataclass(frozen=True)
class Clock:
    """The hypothetical event's position: ``idx`` = N (after the log's ``rows`` events) and the
    row-time map's constants."""

    idx: int
    rows: int
    n_train: int
    n_total: int
    cutoff: int

    def timestamp(self) -> Column:
        return timestamp_column(self.n_train, self.n_total, F.lit(self.idx).cast("long"))

    def fit(self) -> Column:
        return encode.fit_rows(PROFILE, self.cutoff)


@dataclass(frozen=True)
class Context:
    """One surface context: its name, its three source codes and its ``source`` code."""

    name: str
    codes: tuple[int, int, int]
    source: int


def previous_song_stems(shape: manifest.Shape) -> list[str]:
    """The serving ``before_<stem>`` columns that copy a column of the user's last event."""
    names = [s.name for s in manifest.profile_specs(PROFILE, shape) if s.name.startswith("before_")]
    return [n.removeprefix("before_") for n in names if n not in _NOT_COPIED]


def read_history(spark: SparkSession, cfg: Config, now: Clock) -> DataFrame:
    """The ``serving`` rows of silver.features, checked to describe exactly the log of ``now``."""
    path = lake.table_path(cfg.lake.root, "silver", "features")
    rerun = "run `relisten features --set features.profile=serving`"
    if not lake.exists(path):
        raise InputError(f"{path} not found: {rerun}")
    history = lake.read(spark, path, where={"profile": PROFILE})
    got = history.agg(F.count(F.lit(1)).alias("n"), F.max("idx").alias("last")).first()
    if (got["n"], got["last"]) != (now.rows, now.idx - 1):
        raise InputError(
            f"{path} (serving) has {got['n']} rows up to idx {got['last']} but bronze.events has "
            f"{now.rows} up to {now.idx - 1}: the features are stale, {rerun}"
        )
    return history


def clock(events: DataFrame, cfg: Config) -> Clock:
    """The scoring clock of ``events`` (bronze): N = max(idx) + 1, the serving time map."""
    row = events.agg(
        F.count(F.lit(1)).alias("rows"),
        F.max("idx").alias("last"),
        F.sum((F.col("split") == "train").cast("long")).alias("train"),
    ).first()
    n_train = int(row["train"] or 0)
    if row["last"] is None or n_train < 2:
        raise InputError(f"bronze.events has {n_train} train rows; scoring needs at least 2")
    cutoff = holdout_cutoff(events, cfg.evaluation)
    return Clock(int(row["last"]) + 1, int(row["rows"]), n_train, serving_clock(n_train), cutoff)


def fills(history: DataFrame, fit: Column) -> dict[str, float | None]:
    """The serving fill values the feature job fits: the NN means of member_add (song-table
    means of song_length / yy over the fit songs, row means of the cumulative counts over the
    fit rows) and ``before_timestamp`` (mean gap over the fit rows with an earlier event)."""
    fit_rows = history.where(fit)
    per_song = fit_rows.groupBy("song_id").agg(
        F.first("song_length").alias("song_length"), F.first("yy").alias("yy")
    )
    static = add.column_means(per_song, ["song_length", "yy"])
    row = add.column_means(fit_rows, ["artist_song_cnt", "artist_rec_cnt", "song_rec_cnt"])
    gap = add.column_means(fit_rows.where(F.col("msno_till_now_cnt") > 0), ["before_timestamp"])
    if gap["before_timestamp"] is None:
        raise InputError("no fit row of silver.features has an earlier event of its user")
    return {**static, **row, **gap}


def coded_surfaces(codes: DataFrame, history: DataFrame, fit: Column) -> tuple[DataFrame, list[Context]]:
    """(``[surface, _ctx, <source code columns>, source]``: each surface's context with its
    ``source`` code, encoded as the feature job fits it; the distinct contexts)."""
    by_surface = codes.select("surface", F.col("context").alias("_ctx"), *SOURCE_COLUMNS)
    by_surface = add.add_source(by_surface, add.fit_source_codes(history, fit)).localCheckpoint()
    coded = by_surface.drop("surface").distinct().collect()  # one row per surface context
    return by_surface, [
        Context(r["_ctx"], tuple(int(r[c]) for c in SOURCE_COLUMNS), int(r["source"]))  # type: ignore[arg-type]
        for r in sorted(coded, key=lambda r: r["_ctx"])
    ]


def _count_where(condition: Column) -> Column:
    return F.sum(F.when(condition, F.lit(1)).otherwise(F.lit(0)))


def _ratio(count: Column, total: Column) -> Column:
    return count.cast("double") / F.when(total > 0, total)


def _context_counts(prefix: str, ctxs: Sequence[Context], with_source: bool) -> list[Column]:
    """Per context: how many rows have each of its source codes (and its ``source`` code)."""
    out = []
    for j, ctx in enumerate(ctxs):
        for column, code in zip(SOURCE_COLUMNS, ctx.codes, strict=True):
            out.append(_count_where(F.col(column) == code).alias(f"_{prefix}{j}_{column}"))
        if with_source:
            out.append(_count_where(F.col("source") == ctx.source).alias(f"_{prefix}{j}_source"))
    return out


def _window_counts(now: Clock, windows: Sequence[int], prefix: str) -> list[Column]:
    return [_count_where(F.col("idx") >= now.idx - int(w)).alias(f"_{prefix}_w{w}") for w in windows]


def user_history(
    rows: DataFrame,
    now: Clock,
    shape: manifest.Shape,
    ctxs: Sequence[Context],
) -> DataFrame:
    """One row per user of the log: ``[msno, _n, _u_w<w>, _u<j>_<column>, _last_<column> ...,
    msno_timestamp_mean/std, msno_<column>_<code>, member_add columns]``.

    ``rows``: the serving rows of the log with their NN values (``add.add_nn_values``)."""
    last = [
        "song_id",
        "artist_name",
        "timestamp",
        "source_type",
        "source_screen_name",
        *previous_song_stems(shape),
    ]
    shares = [
        _ratio(_count_where(F.col(column) == code), F.count(F.lit(1))).alias(share_name(column, code))
        for column, listed in manifest.SOURCE_SHARE_CODES.items()
        for code in listed
    ]
    member_add = [
        F.avg((F.col("language") == c).cast("double")).alias(f"msno_language_{c}") for c in add.LANGUAGE_CODES
    ]
    for stem, column in add.MEMBER_ADD_VALUES.items():
        member_add += [
            F.avg(column).alias(f"msno_{stem}_mean"),
            F.stddev_samp(column).alias(f"msno_{stem}_std"),
        ]
    per_user = rows.groupBy("msno").agg(
        F.count(F.lit(1)).alias("_n"),
        F.max("idx").alias("_last_idx"),
        F.avg("timestamp").alias("msno_timestamp_mean"),
        F.stddev_samp("timestamp").alias("msno_timestamp_std"),
        *_window_counts(now, shape.windows, "u"),
        *_context_counts("u", ctxs, with_source=True),
        *shares,
        *member_add,
    )
    # the user's last event: one row per user, found by its idx (no per-row struct to compare)
    ends = per_user.select(F.col("msno").alias("_m"), F.col("_last_idx").alias("_i"))
    is_last = (F.col("msno") == F.col("_m")) & (F.col("idx") == F.col("_i"))
    last_rows = rows.join(F.broadcast(ends), is_last)
    last_rows = last_rows.select("msno", *[F.col(c).alias(f"_last_{c}") for c in last])
    # distinct artist codes, the missing code (null) counted as one, as the cumulative form does
    artists = rows.groupBy("msno", "artist_name").count()
    artists = artists.groupBy("msno").agg(F.count(F.lit(1)).alias("_artists"))
    return per_user.drop("_last_idx").join(last_rows, "msno").join(artists, "msno")


def song_history(history: DataFrame, now: Clock, shape: manifest.Shape, ctxs: Sequence[Context]) -> DataFrame:
    """One row per song of the log: ``[song_id, _s_n, song_timestamp_mean/std, _s_w<w>,
    _s<j>_<column>]``."""
    return history.groupBy("song_id").agg(
        F.count(F.lit(1)).alias("_s_n"),
        F.avg("timestamp").alias("song_timestamp_mean"),
        F.stddev_samp("timestamp").alias("song_timestamp_std"),
        *_window_counts(now, shape.windows, "s"),
        *_context_counts("s", ctxs, with_source=False),
    )


def silver_factors(spark: SparkSession, cfg: Config) -> SvdFactors:
    """The serving SVD factors of silver (keyed by raw msno / song_id and the artist code)."""

    def table(name: str) -> DataFrame:
        path = lake.table_path(cfg.lake.root, "silver", name)
        if not lake.exists(path):
            raise InputError(f"{path} not found: run `relisten features --set features.profile=serving`")
        return lake.read(spark, path, where={"profile": PROFILE}).drop("profile")

    values = table("svd_values").orderBy("matrix", "component").collect()  # k + ka small rows
    return SvdFactors(
        member=table("svd_member"),
        song=table("svd_song"),
        member_artist=table("svd_member_artist"),
        artist=table("svd_artist"),
        song_values=tuple(float(r["value"]) for r in values if r["matrix"] == "user_song"),
        artist_values=tuple(float(r["value"]) for r in values if r["matrix"] == "user_artist"),
    )


def _keys(values: DataFrame, raw: str, key: str, fit_rows: DataFrame) -> DataFrame:
    """``[raw, key int, _fit]`` for the distinct values of ``values[raw]``."""
    codes = encode.key_codes(values, {key: raw})[key]
    return flag_fit(codes, fit_rows, raw)


def user_state(
    users: DataFrame,
    history: DataFrame,
    per_user: DataFrame,
    frames: BronzeFrames,
    factors: SvdFactors,
    fit: Column,
) -> DataFrame:
    """One row per scored user (``users``: ``[msno]``): member table, SVD factors, history."""
    everyone = users.select("msno").unionByName(history.select("msno")).distinct()
    keys = _keys(everyone, "msno", "_user", history.where(fit))
    member_t, _ = encode.member_table(keys, frames.members)
    member_t = member_t.join(keys.select("_user", "msno"), "_user").drop("_user")
    components = factors.member.join(factors.member_artist, "msno", "left")
    return (
        users.select("msno")
        .join(member_t, "msno", "left")
        .join(components, "msno", "left")
        .fillna(0.0, [c for c in components.columns if c != "msno"])
        .join(per_user, "msno", "left")
    )


def song_state(
    songs: DataFrame,
    history: DataFrame,
    per_song: DataFrame,
    frames: BronzeFrames,
    factors: SvdFactors,
    fit: Column,
) -> tuple[DataFrame, DataFrame]:
    """(one row per candidate song (``songs``: ``[song_id]``) with static columns, SVD factors,
    counts and history; the song table of the log's songs ``[song_id, artist_name, ...]``)."""
    keys = _keys(history, "song_id", "_song", history.where(fit))
    song_t, _ = encode.song_table(keys, frames.songs, frames.song_extra)
    song_t = song_t.drop("_song").localCheckpoint()
    counts = popularity.song_counts_batch(
        song_t.withColumnRenamed("song_id", "_song"), history.select("song_id")
    ).withColumnRenamed("_song", "song_id")
    statics = song_t.drop(*[c for c in song_t.columns if c.startswith("_k_")])
    state = (
        songs.select("song_id")
        .join(statics, "song_id", "left")
        .join(factors.song, "song_id", "left")
        .join(F.broadcast(factors.artist), "artist_name", "left")
        .join(counts, "song_id", "left")
        .join(per_song, "song_id", "left")
    )
    return state, song_t


def _value_counts(rows: DataFrame, value: str) -> DataFrame:
    return rows.groupBy(F.col("msno").alias("_m"), F.col(value).alias("_v")).agg(
        F.count(F.lit(1)).alias("_c")
    )


def add_user_value_counts(narrow: DataFrame, rows: DataFrame) -> DataFrame:
    """``narrow`` ``[msno, <value columns of USER_VALUE_SHARES>, ...]`` + ``_c_<share>``: how many
    of the user's rows in the log (``rows``, with NN values) carry the pair's value (null values
    match null values)."""
    out = narrow
    for name, value in USER_VALUE_SHARES.items():
        table = _value_counts(rows, value)
        joined = out.join(table, (out["msno"] == table["_m"]) & out[value].eqNullSafe(table["_v"]), "left")
        out = joined.select(
            *[out[c] for c in out.columns], F.coalesce(F.col("_c"), F.lit(0)).alias(f"_c_{name}")
        )
    return out


def _pick(ctxs: Sequence[Context], column: str) -> Column:
    """The per-context column ``column.format(j)`` of the row's context."""
    value = F.lit(None).cast("long")
    for j, ctx in enumerate(ctxs):
        value = F.when(F.col("_ctx") == ctx.name, F.col(column.format(j))).otherwise(value)
    return value


def pair_columns(
    now: Clock, shape: manifest.Shape, ctxs: Sequence[Context], fill: Mapping[str, float | None]
) -> dict[str, Column]:
    """The computed serving columns of a pair row (everything not copied from a state table)."""
    n_u, n_s = F.coalesce(F.col("_n"), F.lit(0)), F.coalesce(F.col("_s_n"), F.lit(0))
    seen = n_u > 0
    out: dict[str, Column] = {
        "timestamp": now.timestamp(),
        "msno_rec_cnt": F.log1p(n_u.cast("double")),
        "msno_till_now_cnt": F.log1p(n_u.cast("double")),
        "song_till_now_cnt": F.log1p(n_s.cast("double")),
        "artist_msno_cnt": F.log1p(F.coalesce(F.col("_artists"), F.lit(0)).cast("double")),
    }
    for w in shape.windows:
        out[f"msno_{w}_before_cnt"] = F.log1p(F.coalesce(F.col(f"_u_w{w}"), F.lit(0)).cast("double"))
        out[f"song_{w}_before_cnt"] = F.log1p(F.coalesce(F.col(f"_s_w{w}"), F.lit(0)).cast("double"))
    for column in SOURCE_COLUMNS:
        out[f"msno_{column}_prob"] = _ratio(_pick(ctxs, f"_u{{}}_{column}"), n_u)
        out[f"song_{column}_prob"] = _ratio(_pick(ctxs, f"_s{{}}_{column}"), n_s)
    out["msno_source_prob"] = _ratio(_pick(ctxs, "_u{}_source"), n_u)
    for name in USER_VALUE_SHARES:
        out[name] = _ratio(F.col(f"_c_{name}"), n_u)
    gap = F.log1p(now.timestamp() - F.col("_last_timestamp"))
    out["before_timestamp"] = F.when(seen, gap).otherwise(F.lit(fill["before_timestamp"]))
    for column in ("source_type", "source_screen_name"):
        out[f"before_{column}"] = F.when(seen, F.col(f"_last_{column}")).otherwise(F.col(column))
    return out


def pair_features(
    spark: SparkSession, cfg: Config, frames: BronzeFrames, pairs: DataFrame, codes: DataFrame
) -> DataFrame:
    """Serving features of every candidate pair, clustered by user for
    :func:`~relisten_spark.scoring.rank.score_and_rank`: ``[surface, msno, song_id, artist_key,
    <catalogue columns>]`` (columns outside the serving profile are typed nulls).

    ``pairs``: ``[surface, msno, song_id, artist_key, ...]`` (other columns are ignored);
    ``codes``: score.surface_codes.
    """
    from relisten_spark.scoring.rank import cluster_by_user

    shape = manifest.Shape(tuple(cfg.features.windows), cfg.features.svd_song_k, cfg.features.svd_artist_k)
    now = clock(frames.events, cfg)
    fit = now.fit()
    history = read_history(spark, cfg, now)
    fill = fills(history, fit)
    by_surface, ctxs = coded_surfaces(codes, history, fit)
    factors = silver_factors(spark, cfg)
    _check_songs(pairs, history)
    rows = add.add_nn_values(history, fill)
    per_user = user_history(rows, now, shape, ctxs)
    users = user_state(pairs.select("msno").distinct(), history, per_user, frames, factors, fit)
    per_song = song_history(history, now, shape, ctxs)
    songs, song_t = song_state(pairs.select("song_id").distinct(), history, per_song, frames, factors, fit)

    nn_yy = F.coalesce(F.col("yy"), F.lit(fill["yy"])).cast("double").alias("_nn_yy")  # as add_nn_values
    attrs = song_t.select("song_id", *[c for c in USER_VALUE_SHARES.values() if c != "_nn_yy"], nn_yy)
    keys = pairs.select("surface", "msno", "song_id", "artist_key")  # not the pool's own `source`
    narrow = keys.join(F.broadcast(by_surface), "surface").join(F.broadcast(attrs), "song_id", "left")
    narrow = add_svd_dots(narrow, factors)
    narrow = add_user_value_counts(narrow, rows)
    narrow = narrow.select(
        "surface", "msno", "song_id", "artist_key", "_ctx", *SOURCE_COLUMNS, "source",
        "song_embeddings_dot", "artist_embeddings_dot", *[f"_c_{n}" for n in USER_VALUE_SHARES],
    )  # fmt: skip

    wide = cluster_by_user(narrow).join(F.broadcast(users), "msno", "left")
    wide = wide.join(F.broadcast(songs), "song_id", "left")
    computed = pair_columns(now, shape, ctxs, fill)
    wide = wide.select("*", *[c.alias(n) for n, c in computed.items()])
    seen = F.coalesce(F.col("_n"), F.lit(0)) > 0
    copies = [
        F.when(seen, F.col(f"_last_{s}")).otherwise(F.col(s)).alias(f"before_{s}")
        for s in (*previous_song_stems(shape), "artist_name")
    ]
    wide = wide.select("*", *copies)
    wide = wide.select("*", *gbdt_extra.flag_columns(include_after=False), *gbdt_extra.time_columns())
    return wide.select("surface", "msno", "song_id", "artist_key", *output_columns(shape, PROFILE))


def _check_songs(pairs: DataFrame, history: DataFrame) -> None:
    """Raise :class:`InputError` when a candidate song never occurs in the log (the song state
    and its counters are built from the log's rows)."""
    outside = (
        pairs.select("song_id").distinct().join(history.select("song_id").distinct(), "song_id", "left_anti")
    )
    some = [r["song_id"] for r in outside.limit(5).collect()]
    if some:
        raise InputError(f"candidate songs must occur in the log; these do not: {some}")
