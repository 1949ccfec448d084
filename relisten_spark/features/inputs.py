"""The feature job's encode phase, shared by both profiles: key codes, the fitted label encoders,
the encoded events, the member table and the song table."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from relisten_spark.config import Config
from relisten_spark.errors import InputError
from relisten_spark.features import encode, label_codes
from relisten_spark.features.bronze import BronzeFrames
from relisten_spark.features.encode import LabelCodes
from relisten_spark.runtime import Held, checkpoint
from relisten_spark.splits import holdout_cutoff

# the song-table columns every event row carries (its song's attributes)
SONG_ATTRIBUTES = ("artist_name", "first_genre_id", "xxx", "language", "song_length", "yy")


@dataclass(frozen=True)
class EncodedInputs:
    """The encoded inputs of one profile (the frames are persisted or checkpointed).

    * ``ev``: ``[idx long, msno int, song_id int, source_system_tab, source_screen_name,
      source_type int, split, target int]`` (msno / song_id: the key codes);
    * ``fit``: the fit rows (:func:`encode.fit_rows`); ``n_train`` / ``n_test``: row counts;
    * ``songs``: ``[song_id (raw), _song, _fit]``, every song of the events;
    * ``member_t``: ``[_raw_msno, _user, <member columns>]``, ``song_t``: ``[_raw_song, _song,
      <song columns>]`` (:func:`encode.member_table`, :func:`encode.song_table`);
    * ``codes``: every fitted encoder by its name (silver.label_codes).
    """

    ev: DataFrame
    fit: Column
    n_train: int
    n_test: int
    songs: DataFrame
    member_t: DataFrame
    song_t: DataFrame
    codes: dict[str, LabelCodes]


def _split_counts(events: DataFrame) -> tuple[int, int]:
    counts = events.agg(
        F.sum((F.col("split") == "train").cast("long")).alias("train"),
        F.sum((F.col("split") == "test").cast("long")).alias("test"),
    ).collect()[0]
    n_train = int(counts["train"] or 0)
    if n_train < 2:
        raise InputError(f"bronze.events has {n_train} train rows; the features need at least 2")
    return n_train, int(counts["test"] or 0)


def encode_inputs(frames: BronzeFrames, profile: str, cfg: Config, held: Held) -> EncodedInputs:
    """Fit the encoders of ``profile`` on its fit rows (full: train and test rows; serving: train
    rows before the holdout cutoff) and encode the events, members and songs."""
    events = held.persist(
        frames.events.select(
            *[F.col(c) for c in ("idx", "msno", "song_id", *encode.SOURCE_COLUMNS, "target", "split")]
        )
    )
    n_train, n_test = _split_counts(events)
    cutoff = holdout_cutoff(events, cfg.evaluation) if profile == "serving" else None
    fit = encode.fit_rows(profile, cutoff)
    keys = encode.key_codes(events, {"_user": "msno", "_song": "song_id"})
    fit_events = events.where(fit)
    users = checkpoint(encode.flag_fit(keys["_user"], fit_events, "msno"))
    songs = checkpoint(encode.flag_fit(keys["_song"], fit_events, "song_id"))
    event_codes = encode.fit_event_codes(events, fit)
    ev = held.persist(encode.encode_events(events, keys["_user"], keys["_song"], event_codes))
    member_codes = encode.fit_member_codes(users, frames.members)
    member_t = encode.member_table(users, frames.members, member_codes)
    member_t = checkpoint(member_t.withColumnRenamed("msno", "_raw_msno"))
    song_rows = encode.song_rows(songs, frames.songs, frames.song_extra)
    song_codes = encode.fit_song_codes(song_rows)
    song_t = checkpoint(encode.song_table(song_rows, song_codes).withColumnRenamed("song_id", "_raw_song"))
    codes = {
        **event_codes.sources,
        label_codes.SOURCE: encode.fit_source_codes(ev, fit),
        **member_codes.by_name(),
        **song_codes.by_name(),
    }
    return EncodedInputs(ev, fit, n_train, n_test, songs, member_t, song_t, codes)


def event_rows(inputs: EncodedInputs, song_columns: tuple[str, ...] = ()) -> DataFrame:
    """``ev`` + its song's :data:`SONG_ATTRIBUTES` and ``song_columns`` (a broadcast lookup in the
    song table) + ``source`` (the code of the source triple)."""
    lookup = inputs.song_t.select(F.col("_song").alias("_s"), *SONG_ATTRIBUTES, *song_columns)
    ev = inputs.ev
    base = ev.join(F.broadcast(lookup), ev["song_id"] == F.col("_s"), "left").drop("_s")
    return encode.add_source(base, inputs.codes[label_codes.SOURCE])
