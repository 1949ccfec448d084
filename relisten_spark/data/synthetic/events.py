"""The synthetic event log: who listens to which song, when, and the train/test cut."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from relisten_spark.data.synthetic.calibration import N_GENRES, SINGLE_LISTENER_SHARE, TABS
from relisten_spark.data.synthetic.catalogue import Catalogue
from relisten_spark.data.synthetic.latent import ARTIST_DIM, DIM, N_CLUSTERS, Latent
from relisten_spark.data.synthetic.sampling import degree_sequence
from relisten_spark.errors import ConfigError


@dataclass
class Users:
    """Latent attributes of each member (rows in the order of members)."""

    activity: np.ndarray
    theta: np.ndarray  # users x K
    factor: np.ndarray  # users x DIM
    artist_taste: np.ndarray  # users x ARTIST_DIM
    genre_taste: np.ndarray  # users x N_GENRES (float32)
    propensity: np.ndarray
    tab_pref: np.ndarray  # users x tabs
    start: np.ndarray  # event-clock time in [0, 1) of the first activity
    end: np.ndarray  # and of the last


@dataclass
class Events:
    """The event log in file order (train rows, then test rows); one array element per event."""

    user: np.ndarray  # member index
    song: np.ndarray  # catalogue song index
    combo: np.ndarray  # row of ``combos``
    combos: pd.DataFrame  # [tab_index, tab, screen, type, p, offset]: the (tab, screen, type) contexts
    target: np.ndarray  # int8 0/1
    p_true: np.ndarray  # the probability the target was drawn with
    n_train: int


def draw_users(rng: np.random.Generator, members: pd.DataFrame, lat: Latent) -> Users:
    """Tastes, activity and active span of each member (joins late if registered in 2017)."""
    n = len(members)
    theta = rng.dirichlet(np.full(N_CLUSTERS, 0.3), size=n)
    factor = theta @ lat.centres
    factor /= np.maximum(np.linalg.norm(factor, axis=1, keepdims=True), 1e-9)
    factor = factor + rng.normal(size=(n, DIM)) * (0.45 / np.sqrt(DIM))
    artist_taste = factor @ lat.artist_projection * 2.0 + rng.normal(size=(n, ARTIST_DIM)) * 0.35
    genre_taste = (0.6 * theta @ lat.genre_taste + 0.8 * rng.normal(size=(n, N_GENRES))).astype(np.float32)
    tab_base = np.array([share for share, _ in TABS.values()])
    tab_base /= tab_base.sum()
    tab_pref = 0.7 * rng.dirichlet(tab_base * 8 + 1e-4, size=n) + 0.3 * tab_base
    reg = members["registration_init_time"].to_numpy()
    exp = members["expiration_date"].to_numpy()
    start = np.where(rng.random(n) < 0.75, 0.0, rng.uniform(0.0, 0.95, n))
    late = reg >= 20170101
    start[late] = rng.uniform(0.55, 0.98, int(late.sum()))
    stays = rng.random(n) < 0.78
    end = np.where(stays, 1.0, start + (1.0 - start) * rng.uniform(0.1, 1.0, n))
    gone = exp < 20170101
    end[gone] = start[gone] + (np.maximum(0.85, start[gone] + 0.03) - start[gone]) * rng.uniform(
        0.05, 1.0, int(gone.sum())
    )
    end = np.clip(end, start + 0.02, 1.0)
    return Users(
        activity=rng.lognormal(0.0, 1.3, n),
        theta=theta,
        factor=factor,
        artist_taste=artist_taste,
        genre_taste=genre_taste,
        propensity=rng.normal(size=n),
        tab_pref=tab_pref,
        start=start,
        end=end,
    )


def listener_counts(
    rng: np.random.Generator, cat: Catalogue, played: int, users: int, n_pairs: int
) -> np.ndarray:
    """Distinct listeners of each of the ``played`` first songs, summing to ``n_pairs``.

    A heavy-tailed sequence (SINGLE_LISTENER_SHARE of the songs have one listener, at most 30% of
    the users), the biggest counts going to the songs of popular artists.
    """
    cap = max(1, min(int(0.3 * users), n_pairs))
    counts = np.sort(degree_sequence(rng, played, n_pairs, SINGLE_LISTENER_SHARE, 1.9, cap))[::-1]
    score = 0.8 * cat.artist_pop[cat.artist[:played]] + rng.normal(size=played)
    listeners = np.empty(played, dtype=np.int64)
    listeners[np.argsort(-score, kind="stable")] = counts
    return listeners


@dataclass
class _ListenerDraw:
    """Draws a user for pair slots: weight ``activity * (0.8 theta_k + 0.2 / K)``, or uniform."""

    rng: np.random.Generator
    cum: np.ndarray  # users x K cumulative user weights per cluster
    cluster: np.ndarray  # the song's cluster per pair slot

    def __call__(self, idx: np.ndarray, uniform: bool) -> np.ndarray:
        n_users = self.cum.shape[0]
        if uniform:
            return self.rng.integers(0, n_users, len(idx)).astype(np.int32)
        out = np.empty(len(idx), dtype=np.int32)
        u = self.rng.random(len(idx))
        k = self.cluster[idx]
        for c in np.flatnonzero(np.bincount(k)):
            sel = np.flatnonzero(k == c)
            out[sel] = np.minimum(np.searchsorted(self.cum[:, c], u[sel], side="right"), n_users - 1)
        return out


def draw_pairs(
    rng: np.random.Generator, listeners: np.ndarray, song_cluster: np.ndarray, usr: Users
) -> tuple[np.ndarray, np.ndarray]:
    """Unique (user, song) pairs: song ``s`` gets ``listeners[s]`` distinct users.

    Users are drawn with weight ``activity * (0.8 theta_k + 0.2 / K)`` for the song's cluster
    ``k``; every user gets at least one song; duplicate pairs are redrawn (uniformly after a
    few rounds, so saturated popular songs still fill up).
    """
    n_users = len(usr.activity)
    song = np.repeat(np.arange(len(listeners), dtype=np.int32), listeners)
    n = len(song)
    weights = usr.activity[:, None] * (0.8 * usr.theta + 0.2 / N_CLUSTERS)  # users x K
    cum = np.cumsum(weights, axis=0)
    cum /= cum[-1]
    draw = _ListenerDraw(rng, cum, song_cluster[song])
    user = draw(np.arange(n), uniform=False)
    guaranteed = rng.choice(n, size=n_users, replace=False)
    user[guaranteed] = rng.permutation(n_users).astype(np.int32)
    fixed = np.zeros(n, dtype=bool)
    fixed[guaranteed] = True
    _redraw_duplicates(user, song, fixed, len(listeners), draw)
    return user, song


def _redraw_duplicates(
    user: np.ndarray, song: np.ndarray, fixed: np.ndarray, n_songs: int, draw: _ListenerDraw
) -> None:
    """Redraw ``user`` (in place) where a pair repeats, keeping the ``fixed`` slots."""
    key = user.astype(np.int64) * n_songs + song
    order = np.argsort(key * 2 + ~fixed)  # equal pairs: the guaranteed stub first
    sorted_key = key[order]
    del key
    dup = sorted_key[1:] == sorted_key[:-1]
    open_ = order[1:][dup]
    accepted = [sorted_key[np.concatenate([[True], ~dup])]]  # sorted chunks of taken pairs
    del order, sorted_key, dup
    for round_ in range(40):
        if len(open_) == 0:
            break
        user[open_] = draw(open_, uniform=round_ >= 6)
        new_key = user[open_].astype(np.int64) * n_songs + song[open_]
        taken = np.zeros(len(open_), dtype=bool)
        for chunk in accepted:
            pos = np.minimum(np.searchsorted(chunk, new_key), len(chunk) - 1)
            taken |= chunk[pos] == new_key
        free_key = new_key[~taken]
        fresh, first = np.unique(free_key, return_index=True)
        first_free = np.zeros(len(free_key), dtype=bool)
        first_free[first] = True
        if len(fresh):
            accepted.append(fresh)
        open_ = np.concatenate([open_[taken], open_[~taken][~first_free]])
    if len(open_):
        raise ConfigError(
            "data.synthetic.events is too large for data.synthetic.users x data.synthetic.songs: "
            "could not draw unique (user, song) pairs"
        )


def _clock(
    rng: np.random.Generator, user: np.ndarray, song: np.ndarray, usr: Users, release: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Event times in [0, 1] and session ids: sessions spread over each user's active span."""
    n_users = len(usr.activity)
    degree = np.bincount(user, minlength=n_users)
    session_len = rng.lognormal(np.log(10.0), 0.5, n_users)
    n_sessions = np.maximum(1, np.ceil(degree / session_len)).astype(np.int64)
    offset = np.concatenate([[0], np.cumsum(n_sessions)[:-1]])
    session_user = np.repeat(np.arange(n_users), n_sessions)
    centre = usr.start[session_user] + (usr.end[session_user] - usr.start[session_user]) * rng.random(
        len(session_user)
    )
    session = offset[user] + np.floor(rng.random(len(user)) * n_sessions[user]).astype(np.int64)
    t = centre[session] + rng.random(len(user)) * 2e-4
    r = release[song]
    end = usr.end[user]
    late = np.flatnonzero((t < r) & (end > r))  # a new release is heard after it comes out
    t[late] = r[late] + (end[late] - r[late]) * rng.random(len(late)) * 0.5
    return t, session


def event_log(
    rng: np.random.Generator, user: np.ndarray, song: np.ndarray, usr: Users, release: np.ndarray,
    n_train: int, n_repeat: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Order the unique pairs by time, cut train/test, and replay ``n_repeat`` train pairs in test.

    Returns user, song and session (-1 for replays) per event in file order: train rows, then
    test rows. Replayed pairs prefer users still active after the cut.
    """
    t, session = _clock(rng, user, song, usr, release)
    order = np.argsort(t, kind="stable")
    train_ev, test_ev = order[:n_train], order[n_train:]
    t_cut = t[train_ev[-1]]
    alive = usr.end[user[train_ev]] > t_cut
    chosen = np.sort(np.argsort(-(rng.random(n_train) + alive), kind="stable")[:n_repeat])
    rep = train_ev[chosen]
    rep_t = t_cut + 1e-9 + (np.maximum(usr.end[user[rep]], t_cut) - t_cut) * rng.random(n_repeat)
    test_t = np.concatenate([t[test_ev], rep_t])
    test_order = np.argsort(test_t, kind="stable")
    test_user = np.concatenate([user[test_ev], user[rep]])[test_order]
    test_song = np.concatenate([song[test_ev], song[rep]])[test_order]
    test_session = np.concatenate([session[test_ev], np.full(n_repeat, -1)])[test_order]
    return (
        np.concatenate([user[train_ev], test_user]),
        np.concatenate([song[train_ev], test_song]),
        np.concatenate([session[train_ev], test_session]),
    )
