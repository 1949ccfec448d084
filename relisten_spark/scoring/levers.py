"""Product levers of a surface's top-N: a popularity penalty and a diversity re-rank (MMR).

Both act where :func:`~relisten_spark.scoring.rank.top_n_positions` picks the top-N of the scored
candidates, on top of the artist cap:

* **popularity penalty** ``lambda``: candidates are ordered by ``score - lambda * song_rec_cnt``
  (``song_rec_cnt`` = log1p of the song's plays in the log, a serving feature), so a popular
  song must score higher to be picked;
* **maximal marginal relevance** (Carbonell & Goldstein 1998) with weight ``w``: the list is
  built greedily, each step taking the candidate of largest
  ``(1 - w) * relevance - w * max_{j picked} sim(candidate, j)`` (relevance: the penalised
  score), ``sim`` one of ``artist`` (same artist: 1, else 0), ``genre`` (same first genre: 1)
  or ``svd`` (cosine of the songs' SVD factors, ``song_component_*``).

Ties go to the earlier candidate in the order (penalised score descending, ``song_id``
ascending); with no lever active the greedy pick is exactly the plain ordered top-N with the
artist cap. The greedy runs for all users of a frame at once (candidates padded into
``users x candidates`` matrices, N vectorised steps), inside the scoring tasks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from relisten_spark.features.spec import SVD_SONG_K

Similarity = Literal["artist", "genre", "svd"]
POPULARITY = "song_rec_cnt"
GENRE = "first_genre_id"


def svd_columns(k: int) -> tuple[str, ...]:
    """The song's SVD factor columns (``features.svd_song_k`` of them)."""
    return tuple(f"song_component_{j}" for j in range(k))


@dataclass(frozen=True)
class Levers:
    """One surface's lever settings (``scoring.surfaces.<name>.popularity_penalty``,
    ``mmr_weight``, ``mmr_similarity``; ``svd_k`` = ``features.svd_song_k``); the defaults change
    nothing."""

    popularity_penalty: float = 0.0
    mmr_weight: float = 0.0
    mmr_similarity: Similarity = "genre"
    svd_k: int = SVD_SONG_K

    @property
    def active(self) -> bool:
        return self.popularity_penalty != 0.0 or self.mmr_weight != 0.0

    def columns(self) -> tuple[str, ...]:
        """The feature columns the levers read besides ``[surface, msno, song_id, artist_key,
        score]``."""
        out: tuple[str, ...] = (POPULARITY,) if self.popularity_penalty else ()
        if self.mmr_weight and self.mmr_similarity == "genre":
            out += (GENRE,)
        if self.mmr_weight and self.mmr_similarity == "svd":
            out += svd_columns(self.svd_k)
        return out

    def label(self) -> str:
        """A short name of the setting: ``base``, ``pop0.05``, ``mmr-genre0.3``, ``pop0.05+mmr-svd0.3``."""
        parts = []
        if self.popularity_penalty:
            parts.append(f"pop{self.popularity_penalty:g}")
        if self.mmr_weight:
            parts.append(f"mmr-{self.mmr_similarity}{self.mmr_weight:g}")
        return "+".join(parts) or "base"


def relevance(frame: pd.DataFrame, levers: Levers) -> np.ndarray:
    """The score the levers rank by: ``score - popularity_penalty * song_rec_cnt`` (a missing
    count counts 0)."""
    score = frame["score"].to_numpy(dtype=np.float64)
    if not levers.popularity_penalty:
        return score
    plays = np.nan_to_num(frame[POPULARITY].to_numpy(dtype=np.float64), nan=0.0)
    return score - levers.popularity_penalty * plays


def _codes(values: pd.Series) -> np.ndarray:
    """Integer codes of ``values`` (a missing value gets a code of its own per row)."""
    codes, _ = pd.factorize(values, use_na_sentinel=True)
    missing = codes < 0
    codes[missing] = codes.max(initial=-1) + 1 + np.arange(int(missing.sum()))
    return codes


def _padded(
    values: np.ndarray, group: np.ndarray, slot: np.ndarray, shape: tuple[int, int], fill: float
) -> np.ndarray:
    out = np.full(shape + values.shape[1:], fill, dtype=np.float64)
    out[group, slot] = values
    return out


def _similarity_matrix(ordered: pd.DataFrame, levers: Levers) -> np.ndarray:
    """Per candidate, what its similarity is computed from: a code (artist, genre; shape
    ``[rows]``) or a unit vector (svd; ``[rows, 48]``)."""
    if levers.mmr_similarity == "artist":
        return _codes(ordered["artist_key"]).astype(np.float64)
    if levers.mmr_similarity == "genre":
        return _codes(ordered[GENRE]).astype(np.float64)
    vectors = np.nan_to_num(ordered[list(svd_columns(levers.svd_k))].to_numpy(dtype=np.float64), nan=0.0)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def _sim_to(items: np.ndarray, picked: np.ndarray, rows: np.ndarray, svd: bool) -> np.ndarray:
    """``[users, slots]`` similarity of every candidate to the one just picked per user."""
    chosen = items[rows, picked]
    if svd:
        return np.einsum("uks,us->uk", items, chosen)
    return (items == chosen[:, None]).astype(np.float64)


def greedy_positions(
    frame: pd.DataFrame, top_n: int, max_per_artist: int | None, levers: Levers
) -> pd.DataFrame:
    """The top-N of one surface with the levers, every user of ``frame`` at once.

    ``frame``: ``[msno, song_id, artist_key, score, <levers.columns()>]`` (one surface).
    Returns ``[pos, rank]`` (``pos`` the row position in ``frame``), ordered by msno, rank.
    """
    rel = relevance(frame, levers)
    ordered = frame.assign(pos=np.arange(len(frame)), _rel=rel).sort_values(
        ["msno", "_rel", "song_id"], ascending=[True, False, True], kind="stable"
    )
    if ordered.empty:
        return pd.DataFrame({"pos": np.array([], dtype=np.int64), "rank": np.array([], dtype=np.int64)})
    group = pd.factorize(ordered["msno"])[0]
    slot = ordered.groupby("msno", sort=False).cumcount().to_numpy()
    shape = (int(group.max()) + 1, int(slot.max()) + 1)
    rows = np.arange(shape[0])
    relevance_m = _padded(ordered["_rel"].to_numpy(), group, slot, shape, -np.inf)
    artist = _padded(_codes(ordered["artist_key"]).astype(np.float64), group, slot, shape, -1.0)
    svd = levers.mmr_weight != 0.0 and levers.mmr_similarity == "svd"
    items = (
        _padded(_similarity_matrix(ordered, levers), group, slot, shape, np.nan)
        if levers.mmr_weight
        else None
    )
    available = np.isfinite(relevance_m)
    same_artist = np.zeros(shape)
    max_sim = np.zeros(shape)
    cap = max_per_artist or math.inf
    w = levers.mmr_weight
    picks, ranks = [], []
    for step in range(top_n):
        value = (1.0 - w) * relevance_m - w * max_sim if w else relevance_m
        allowed = available & (same_artist < cap)
        value = np.where(allowed, value, -np.inf)
        pick = np.argmax(value, axis=1)
        live = allowed[rows, pick]
        if not live.any():
            break
        picks.append(np.where(live, pick, -1))
        ranks.append(step + 1)
        available[rows[live], pick[live]] = False
        same_artist += (artist == artist[rows, pick][:, None]) & live[:, None]
        if items is not None:
            sim = np.nan_to_num(_sim_to(items, pick, rows, svd), nan=0.0)
            max_sim = np.where(live[:, None], sim if step == 0 else np.maximum(max_sim, sim), max_sim)
    return _positions(ordered["pos"].to_numpy(), group, slot, shape, picks, ranks)


def _positions(
    pos: np.ndarray,
    group: np.ndarray,
    slot: np.ndarray,
    shape: tuple[int, int],
    picks: list[np.ndarray],
    ranks: list[int],
) -> pd.DataFrame:
    """``[pos, rank]`` of the picked slots, ordered by user then rank."""
    if not picks:
        return pd.DataFrame({"pos": np.array([], dtype=np.int64), "rank": np.array([], dtype=np.int64)})
    position = np.full(shape, -1, dtype=np.int64)
    position[group, slot] = pos
    chosen = np.stack(picks, axis=1)  # [users, steps]
    rank = np.broadcast_to(np.asarray(ranks, dtype=np.int64), chosen.shape)
    user = np.broadcast_to(np.arange(shape[0])[:, None], chosen.shape)
    keep = chosen >= 0
    return pd.DataFrame({"pos": position[user[keep], chosen[keep]], "rank": rank[keep]}).reset_index(
        drop=True
    )
