"""Statistics of the generated data, measured on what was written, to set beside the calibration."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from relisten_spark.data.synthetic.calibration import TABS
from relisten_spark.data.synthetic.catalogue import Catalogue
from relisten_spark.data.synthetic.events import Events
from relisten_spark.data.synthetic.song_metadata import SongMetadata

QUANTILES = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99)


def event_statistics(ev: Events, members: pd.DataFrame, cat: Catalogue) -> dict[str, Any]:
    """Target rates, oracle and popularity AUCs, activity, context shares and the train/test overlap.

    ``members`` in member index order; see GenerationSummary for the keys.
    """
    n_train = ev.n_train
    bd = members["bd"].to_numpy()
    return {
        "target_rate": float(ev.target[:n_train].astype(np.float64).mean()),
        "p_true_mean": float(ev.p_true[:n_train].mean()),
        "test_p_true_mean": float(ev.p_true[n_train:].mean()),
        **_holdout_aucs(ev, len(cat.artist)),
        **_listening(ev, len(cat.artist)),
        **_rates(ev, bd, cat),
        "popularity_repeat_spearman": _popularity_repeat_spearman(ev, len(cat.artist)),
        "bd_zero_share": float(np.mean(bd == 0)),
        "gender_empty_share": float(np.mean(members["gender"].to_numpy() == "")),
        **_test_overlap(ev, len(cat.artist)),
    }


def catalogue_statistics(cat: Catalogue, meta: SongMetadata, played: int) -> dict[str, Any]:
    """Song length, genre count and empty-credit shares of songs.csv; empty ISRCs of song_extra_info."""
    rows = meta.songs_rows
    n_genres = (cat.genres[rows] >= 0).sum(axis=1)
    return {
        "song_length_quantiles": {
            str(q): float(v)
            for q, v in zip(QUANTILES, np.quantile(cat.length_ms[rows], QUANTILES), strict=True)
        },
        "genre_count_share": {
            str(k) if k < 3 else "3+": float(np.mean(n_genres == k) if k < 3 else np.mean(n_genres >= 3))
            for k in range(4)
        },
        "composer_empty_share": float(np.mean(meta.composer[rows] == "")),
        "lyricist_empty_share": float(np.mean(meta.lyricist[rows] == "")),
        "played_songs_without_songs_row": float(np.mean(~meta.in_songs[:played])),
        "isrc_empty_share": float(np.mean(meta.isrc[meta.extra_rows] == "")),
    }


def _holdout_aucs(ev: Events, n_songs: int) -> dict[str, float]:
    """ROC-AUC of p_true and of the song's listener count in the first 80%, on the last 20% of train."""
    n_train = ev.n_train
    tr_song = ev.song[:n_train]
    h0 = int(n_train * 0.8)
    held_y = ev.target[h0:n_train]
    if not 0 < held_y.mean() < 1:
        return {"oracle_auc": float("nan"), "popularity_auc": float("nan")}
    seen = np.bincount(tr_song[:h0], minlength=n_songs)
    return {
        "oracle_auc": float(roc_auc_score(held_y, ev.p_true[h0:n_train])),
        "popularity_auc": float(roc_auc_score(held_y, seen[tr_song[h0:]])),
    }


def _listening(ev: Events, n_songs: int) -> dict[str, Any]:
    """Share of songs with one listener, median distinct songs per user, quantiles of events per user."""
    pairs = _sorted_unique(ev.user.astype(np.int64) * n_songs + ev.song)
    listeners = np.bincount(pairs % n_songs, minlength=n_songs)
    per_user = np.bincount(pairs // n_songs)
    rows_per_user = np.bincount(ev.user)
    return {
        "single_listener_song_share": float(np.mean(listeners[listeners > 0] == 1)),
        "median_songs_per_user": float(np.median(per_user)),
        "events_per_user": {
            **{
                str(q): float(v)
                for q, v in zip(QUANTILES, np.quantile(rows_per_user, QUANTILES), strict=True)
            },
            "max": float(rows_per_user.max()),
        },
    }


def _rates(ev: Events, bd: np.ndarray, cat: Catalogue) -> dict[str, Any]:
    """Train rows per tab (share) and the train target rate per tab, type, song length and age band."""
    n_train = ev.n_train
    y = ev.target[:n_train].astype(np.float64)
    combos = ev.combos
    tab_names = list(TABS)
    tab_code = combos["tab_index"].to_numpy()[ev.combo[:n_train]]
    type_names = sorted(set(combos["type"]))
    type_code = np.searchsorted(np.array(type_names), combos["type"].to_numpy(dtype=str))[ev.combo[:n_train]]
    length_names = ["<2 min", "2-3 min", "3-5 min", "5-7 min", ">=7 min"]
    length_code = np.digitize(cat.length_ms[ev.song[:n_train]], [120_000, 180_000, 300_000, 420_000])
    age_names = ["unknown", "5-25", "26-35", "36-45", "46-74"]
    age = bd[ev.user[:n_train]]
    age_code = np.where((age < 5) | (age > 74), 0, np.digitize(age, [26, 36, 46]) + 1)
    return {
        "tab_share": {
            name: float(c) / n_train
            for name, c in zip(tab_names, np.bincount(tab_code, minlength=len(tab_names)), strict=True)
        },
        "tab_rate": _rate_by(tab_code, tab_names, y),
        "type_rate": _rate_by(type_code, type_names, y),
        "length_rate": _rate_by(length_code, length_names, y),
        "age_rate": _rate_by(age_code, age_names, y),
    }


def _popularity_repeat_spearman(ev: Events, n_songs: int) -> float:
    """Spearman correlation of train rows and train target rate over songs with >= 5 train rows."""
    tr_song = ev.song[: ev.n_train]
    y = ev.target[: ev.n_train].astype(np.float64)
    song_rows = np.bincount(tr_song, minlength=n_songs)
    song_rate = np.bincount(tr_song, weights=y, minlength=n_songs) / np.maximum(song_rows, 1)
    many = song_rows >= 5
    if many.sum() <= 2:
        return float("nan")
    return float(spearmanr(song_rows[many], song_rate[many]).statistic)


def _test_overlap(ev: Events, n_songs: int) -> dict[str, Any]:
    """Test rows whose pair is in train, users with train / test rows, test songs absent from train."""
    n_train = ev.n_train
    key = ev.user.astype(np.int64) * n_songs + ev.song
    train_keys = _sorted_unique(key[:n_train])
    pos = np.minimum(np.searchsorted(train_keys, key[n_train:]), len(train_keys) - 1)
    in_train = train_keys[pos] == key[n_train:]
    train_songs = np.bincount(ev.song[:n_train], minlength=n_songs) > 0
    test_songs = np.bincount(ev.song[n_train:], minlength=n_songs) > 0
    return {
        "test_rows_with_train_pair": float(np.mean(in_train)),
        "train_users": int(np.count_nonzero(np.bincount(ev.user[:n_train]))),
        "test_users": int(np.count_nonzero(np.bincount(ev.user[n_train:]))),
        "test_songs_new": float(np.mean(~train_songs[test_songs])),
    }


def _rate_by(code: np.ndarray, names: list[str], target: np.ndarray) -> dict[str, float]:
    """Mean target per label (labels given as codes into ``names``), labels without rows left out."""
    count = np.bincount(code, minlength=len(names))
    total = np.bincount(code, weights=target, minlength=len(names))
    return {name: float(total[i] / count[i]) for i, name in enumerate(names) if count[i]}


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    s = np.sort(values)
    return s[np.concatenate([[True], s[1:] != s[:-1]])] if len(s) else s
