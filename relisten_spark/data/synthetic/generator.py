"""``relisten generate``: write calibrated synthetic KKBOX files (the package docstring has the model)."""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from relisten_spark.config import Config
from relisten_spark.data.synthetic.calibration import (
    EXTRA_SONG_SHARE,
    ID_COLLISIONS_PER_MEMBER,
    REPEAT_PAIR_SHARE,
)
from relisten_spark.data.synthetic.catalogue import draw_catalogue
from relisten_spark.data.synthetic.context import draw_contexts
from relisten_spark.data.synthetic.events import Events, draw_pairs, draw_users, event_log, listener_counts
from relisten_spark.data.synthetic.latent import draw_latent
from relisten_spark.data.synthetic.members import draw_members
from relisten_spark.data.synthetic.sampling import streams
from relisten_spark.data.synthetic.song_metadata import draw_song_metadata
from relisten_spark.data.synthetic.statistics import catalogue_statistics, event_statistics
from relisten_spark.data.synthetic.target import true_probability
from relisten_spark.data.synthetic.writers import write_files
from relisten_spark.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class GenerationSummary:
    """What :func:`generate` wrote, how long it took and the statistics of the generated data.

    ``stats`` keys: ``target_rate``, ``p_true_mean`` (train) and ``test_p_true_mean``,
    ``oracle_auc`` and ``popularity_auc`` (last 20% of train rows; the popularity baseline
    scores a row by its song's listener count in the first 80%), ``single_listener_song_share``,
    ``median_songs_per_user``, ``events_per_user`` (quantiles), ``tab_share`` and ``tab_rate``
    (train rows per source_system_tab), ``type_rate`` (train, per source_type),
    ``length_rate`` and ``age_rate`` (train rate per song-length and age band),
    ``popularity_repeat_spearman`` (songs with >= 5 train rows), ``bd_zero_share``,
    ``gender_empty_share``, ``test_rows_with_train_pair``, ``train_users``, ``test_users``,
    ``test_songs_new``, ``song_length_quantiles``, ``genre_count_share``,
    ``composer_empty_share``, ``lyricist_empty_share``, ``played_songs_without_songs_row``,
    ``isrc_empty_share``.
    """

    out_dir: Path
    users: int
    songs: int
    events: int
    train_rows: int
    test_rows: int
    seed: int
    seconds: float
    paths: dict[str, Path] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)


def generate(
    out_dir: Path, users: int, songs: int, events: int, seed: int, test_fraction: float = 0.2574
) -> GenerationSummary:
    """Write the five KKBOX CSV files and ``truth.csv`` into ``out_dir`` (created if missing).

    ``users`` members, ``songs`` distinct played songs, ``events`` train + test rows, the last
    ``test_fraction`` of them in test.csv. Deterministic in ``seed``: same arguments, same bytes.
    Raises :class:`ConfigError` naming the ``data.synthetic`` key when the scale is impossible.
    """
    started = time.perf_counter()
    n_train, n_test, n_repeat = _check_scale(users, songs, events, test_fraction)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = streams(seed)

    n_extra = round(EXTRA_SONG_SHARE * songs)  # listed in songs.csv, never played
    msno, song_id = _kkbox_ids(rng["ids"], users, songs, n_extra)
    members = draw_members(rng["members"], msno)
    lat = draw_latent(rng["latent"])
    cat = draw_catalogue(rng["catalog"], songs + n_extra, lat)
    usr = draw_users(rng["latent"], members, lat)
    log.info("generate: members and catalog ready (%.1f s)", time.perf_counter() - started)

    listeners = listener_counts(rng["graph"], cat, songs, users, events - n_repeat)
    user, song = draw_pairs(rng["graph"], listeners, cat.cluster[:songs], usr)
    log.info("generate: %d unique pairs drawn (%.1f s)", len(user), time.perf_counter() - started)

    ev_user, ev_song, ev_session = event_log(rng["time"], user, song, usr, cat.release, n_train, n_repeat)
    del user, song
    log.info("generate: clock ready (%.1f s)", time.perf_counter() - started)

    combo, combos = draw_contexts(rng["context"], ev_user, ev_session, usr.tab_pref)
    del ev_session
    bd = members["bd"].to_numpy()
    p_true = true_probability(ev_user, ev_song, combo, combos, n_train, usr, cat, lat, listeners, bd)
    target = (rng["target"].random(events) < p_true).astype(np.int8)
    ev = Events(ev_user, ev_song, combo, combos, target, p_true, n_train)
    log.info("generate: targets drawn (%.1f s)", time.perf_counter() - started)

    members_file = members.iloc[rng["members"].permutation(len(members))]
    meta = draw_song_metadata(rng["text"], rng["isrc"], cat, lat, songs)
    paths = write_files(out_dir, msno, song_id, members_file, cat.length_ms, meta, ev)
    stats = event_statistics(ev, members, cat) | catalogue_statistics(cat, meta, songs)
    seconds = time.perf_counter() - started
    log.info("generate: done in %.1f s", seconds)
    return GenerationSummary(
        out_dir=out_dir,
        users=users,
        songs=songs,
        events=events,
        train_rows=n_train,
        test_rows=n_test,
        seed=seed,
        seconds=seconds,
        paths=paths,
        stats=stats,
    )


def run(cfg: Config) -> dict[str, Any]:
    """Stage entry of ``relisten generate``: write the synthetic KKBOX files into ``data.raw_dir``."""
    raw_dir = cfg.data.raw_dir
    if "://" in raw_dir or raw_dir.startswith("dbfs:"):
        raise ConfigError(f"data.raw_dir must be a local directory for generate, got {raw_dir}")
    syn = cfg.data.synthetic
    summary = generate(Path(raw_dir), syn.users, syn.songs, syn.events, syn.seed, syn.test_fraction)
    st = summary.stats
    return {
        "raw_dir": str(summary.out_dir),
        "users": summary.users,
        "songs": summary.songs,
        "train_rows": summary.train_rows,
        "test_rows": summary.test_rows,
        "target_rate": round(st["target_rate"], 4),
        "oracle_auc_last_20pct_train": round(st["oracle_auc"], 4),
        "popularity_auc_last_20pct_train": round(st["popularity_auc"], 4),
        "seconds": round(summary.seconds, 1),
    }


def _check_scale(users: int, songs: int, events: int, test_fraction: float) -> tuple[int, int, int]:
    """Train rows, test rows and replayed pairs; :class:`ConfigError` naming the key if impossible."""
    if users < 2:
        raise ConfigError(f"data.synthetic.users must be at least 2, got {users}")
    if songs < 2:
        raise ConfigError(f"data.synthetic.songs must be at least 2, got {songs}")
    if not 0 < test_fraction < 1:
        raise ConfigError(f"data.synthetic.test_fraction must be in (0, 1), got {test_fraction}")
    n_test = round(events * test_fraction)
    n_train = events - n_test
    n_repeat = round(REPEAT_PAIR_SHARE * n_test)
    n_unique = events - n_repeat
    if n_test < 1 or n_train < 2:
        raise ConfigError(f"data.synthetic.events ({events}) is too small for a train and a test part")
    if n_unique < max(users, songs) or n_repeat > n_train:
        raise ConfigError(
            f"data.synthetic.events ({events}) must be at least about data.synthetic.users ({users}) and "
            f"data.synthetic.songs ({songs}) so that every user and song has an event"
        )
    if n_unique > 0.15 * users * songs:
        raise ConfigError(
            f"data.synthetic.events ({events}) is too large for data.synthetic.users ({users}) x "
            f"data.synthetic.songs ({songs}): at most 15% of all (user, song) pairs can be drawn"
        )
    return n_train, n_test, n_repeat


def _kkbox_ids(
    rng: np.random.Generator, users: int, songs: int, n_extra: int
) -> tuple[np.ndarray, np.ndarray]:
    """Member ids and song ids (played songs, then ``n_extra`` more); a few song ids equal member ids."""
    msno = _b64_ids(rng, users)
    song_id = _b64_ids(rng, songs + n_extra)
    collide = rng.choice(songs, size=min(songs, round(users * ID_COLLISIONS_PER_MEMBER)), replace=False)
    song_id[collide] = msno[rng.choice(users, size=len(collide), replace=False)]
    return msno, song_id


def _b64_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` KKBOX-style ids: standard base64 of 32 random bytes (44 chars, one ``=``)."""
    raw = np.zeros((n, 33), dtype=np.uint8)
    raw[:, :32] = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    encoded = np.frombuffer(base64.b64encode(raw.tobytes()), dtype=np.uint8).reshape(n, 44).copy()
    encoded[:, 43] = ord("=")  # the 33rd (zero) byte only fills the last 6 bits: standard padding
    return encoded.view("S44").ravel().astype("U44").astype(object)
