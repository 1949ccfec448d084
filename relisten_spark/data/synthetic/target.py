"""The true repeat probability of each synthetic event, calibrated to KKBOX's rates per tab."""

from __future__ import annotations

import numpy as np
import pandas as pd

from relisten_spark.data.synthetic.calibration import TABS, TARGET_RATE
from relisten_spark.data.synthetic.catalogue import Catalogue
from relisten_spark.data.synthetic.events import Users
from relisten_spark.data.synthetic.latent import Latent
from relisten_spark.data.synthetic.sampling import CHUNK, sigmoid, zscore


def true_probability(
    user: np.ndarray, song: np.ndarray, combo: np.ndarray, combos: pd.DataFrame, n_train: int,
    usr: Users, cat: Catalogue, lat: Latent, listeners: np.ndarray, bd: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """``p_true`` per event of the log (file order, ``n_train`` train rows first), in [1e-6, 1 - 1e-6].

    ``combo`` indexes the rows of ``combos`` (``context.combo_tables``), ``listeners`` the
    listener count per played song, ``bd`` the members' ages.
    """
    position = np.arange(len(user)) / len(user)
    offset = combos["offset"].to_numpy()[combo]
    eta = _logits(user, song, position, offset, usr, cat, lat, listeners, bd)
    return _calibrate(eta, combos["tab_index"].to_numpy()[combo], n_train)


def _length_effect(length_ms: np.ndarray) -> np.ndarray:
    """Inverted U: best at 3-5 minutes, -0.75 logit below 2 and above 7 minutes (thesis 3.5)."""
    minutes = length_ms / 60000.0
    return -0.75 * (np.clip(3.0 - minutes, 0.0, 1.0) + np.clip((minutes - 5.0) / 2.0, 0.0, 1.0))


def _age_effect(bd: np.ndarray) -> np.ndarray:
    """Repeat share falls from 5-25 to 35-45 years and rises after (thesis 3.8)."""
    age = bd.astype(np.float64)
    valid = (age >= 5) & (age <= 74)
    curve = np.interp(age, [0, 25, 35, 45, 60, 75], [0.0, 0.0, -0.35, -0.35, -0.05, 0.0])
    return np.where(valid, curve, -0.1)


def _solve_offsets(eta: np.ndarray, group: np.ndarray, n_groups: int, target: np.ndarray) -> np.ndarray:
    """Per-group logit offsets so that the mean of sigmoid(eta + offset) per group hits ``target``."""
    offset = np.log(target / (1 - target))
    count = np.bincount(group, minlength=n_groups).astype(np.float64)
    for _ in range(30):
        p = sigmoid(eta + offset[group])
        mean = np.bincount(group, weights=p, minlength=n_groups) / np.maximum(count, 1)
        slope = np.bincount(group, weights=p * (1 - p), minlength=n_groups) / np.maximum(count, 1)
        step = np.where(count > 0, (target - mean) / np.maximum(slope, 1e-6), 0.0)
        offset += np.clip(step, -2, 2)
        if np.abs(step).max() < 1e-7:
            break
    return offset


def _affinities(
    user: np.ndarray, song: np.ndarray, art: np.ndarray, genre: np.ndarray, has_genre: np.ndarray,
    usr: Users, cat: Catalogue,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Per event: user.song factor dot, user.artist factor dot, the user's taste for the song's genre.

    ``art`` is the song's artist, ``genre`` its first genre (valid where ``has_genre``).
    """
    n = len(user)
    dot = np.empty(n)
    art_dot = np.empty(n)
    taste = np.empty(n)
    for lo in range(0, n, CHUNK):
        sl = slice(lo, lo + CHUNK)
        dot[sl] = np.einsum("ij,ij->i", usr.factor[user[sl]], cat.factor[song[sl]])
        art_dot[sl] = np.einsum("ij,ij->i", usr.artist_taste[user[sl]], cat.artist_factor[art[sl]])
        taste[sl] = np.where(has_genre[sl], usr.genre_taste[user[sl], genre[sl]], 0.0)
    return dot, art_dot, taste


def _logits(
    user: np.ndarray, song: np.ndarray, position: np.ndarray, combo_offset: np.ndarray,
    usr: Users, cat: Catalogue, lat: Latent, listeners: np.ndarray, bd: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Every term of the true logit except the per-tab offset."""
    degree = np.bincount(user, minlength=len(usr.activity))
    art = cat.artist[song]
    genre = np.maximum(cat.genres[song, 0], 0)
    has_genre = cat.genres[song, 0] >= 0
    dot, art_dot, taste = _affinities(user, song, art, genre, has_genre, usr, cat)
    eta = 1.05 * zscore(usr.propensity[user])
    eta += 0.15 * zscore(np.log(degree[user]))
    eta += 0.30 * zscore(cat.song_effect[song])
    eta += 0.80 * zscore(np.log(listeners[song]))
    eta += 0.30 * zscore(cat.artist_effect[art])
    eta += 0.25 * zscore(np.where(has_genre, lat.genre_effect[genre], 0.0))
    eta += 0.85 * zscore(dot)
    eta += 0.40 * zscore(art_dot)
    eta += 0.35 * zscore(taste)
    eta += _length_effect(cat.length_ms[song])
    eta += _age_effect(bd[user])
    eta += combo_offset
    eta += 0.5 * (0.5 - position)  # a slow drift down the clock
    return eta


def _calibrate(eta: np.ndarray, tab_index: np.ndarray, n_train: int) -> np.ndarray:
    """p_true = sigmoid(eta + per-tab offset): tab rates follow TABS, shifted together so the
    train rate is TARGET_RATE."""
    train_tab = tab_index[:n_train]
    tab_rate = np.array([rate for _, rate in TABS.values()])
    tab_count = np.bincount(train_tab, minlength=len(TABS))
    logit_rate = np.log(tab_rate / (1 - tab_rate))
    lo, hi = -5.0, 5.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if (tab_count * sigmoid(logit_rate + mid)).sum() / n_train > TARGET_RATE:
            hi = mid
        else:
            lo = mid
    offsets = _solve_offsets(eta[:n_train], train_tab, len(TABS), sigmoid(logit_rate + lo))
    return np.clip(sigmoid(eta + offsets[tab_index]), 1e-6, 1 - 1e-6)
