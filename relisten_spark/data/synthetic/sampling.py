"""Random draws and array helpers of the synthetic generator (numpy only, vectorised)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from relisten_spark.errors import ConfigError

CHUNK = 1_000_000  # rows per block of the row-wise loops and of the CSV writes
# one independent random stream per component, so each part is reproducible on its own
STREAMS = ("ids", "members", "latent", "catalog", "text", "isrc", "graph", "time", "context", "target")


def streams(seed: int) -> dict[str, np.random.Generator]:
    """One generator per name of STREAMS, all spawned from ``seed``."""
    children = np.random.SeedSequence(seed).spawn(len(STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(STREAMS, children, strict=True)}


def draw_keys(rng: np.random.Generator, table: Mapping[Any, float], n: int) -> np.ndarray:
    """``n`` draws of the keys of ``table`` with probabilities proportional to its values."""
    keys = np.array(list(table.keys()), dtype=object)
    weights = np.array(list(table.values()), dtype=np.float64)
    return keys[rng.choice(len(keys), size=n, p=weights / weights.sum())]


def draw_rows(rng: np.random.Generator, group: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per element: row ``probs[group[i]]`` (rows sum to 1)."""
    cum = np.cumsum(probs, axis=1)
    cum[:, -1] = 1.0
    out = np.empty(len(group), dtype=np.int64)
    u = rng.random(len(group))
    for g in np.flatnonzero(np.bincount(group)):
        sel = np.flatnonzero(group == g)
        out[sel] = np.searchsorted(cum[g], u[sel], side="right")
    return np.minimum(out, probs.shape[1] - 1)


def pick(rng: np.random.Generator, words: np.ndarray, n: int) -> np.ndarray:
    """``n`` uniform draws from ``words``."""
    return words[rng.integers(0, len(words), n)]


def char_strings(rng: np.random.Generator, alphabet: str, n: int, lo: int, hi: int) -> np.ndarray:
    """``n`` random strings of ``lo..hi`` characters of ``alphabet``."""
    chars = np.array(list(alphabet))
    lengths = rng.integers(lo, hi + 1, n)
    grid = chars[rng.integers(0, len(chars), size=(n, hi))]
    grid[np.arange(hi)[None, :] >= lengths[:, None]] = ""
    return np.ascontiguousarray(grid).view(f"<U{hi}").ravel().astype(object)


def zscore(x: np.ndarray) -> np.ndarray:
    """``x`` standardised to mean 0 and standard deviation 1 (zeros when constant)."""
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x, dtype=np.float64)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function."""
    return 1.0 / (1.0 + np.exp(-x))


def rake(probs: np.ndarray, weights: np.ndarray, marginal: np.ndarray) -> np.ndarray:
    """Rescale the columns of row-stochastic ``probs`` so that ``weights @ probs == marginal``."""
    for _ in range(50):
        probs = probs * (marginal / np.maximum(weights @ probs, 1e-12))
        probs /= probs.sum(axis=1, keepdims=True)
    return probs


def degree_sequence(
    rng: np.random.Generator, n: int, total: int, single_share: float, sigma: float, cap: int
) -> np.ndarray:
    """``n`` counts >= 1 summing to ``total``: a share of ones, the rest 2 + a lognormal tail <= cap.

    Raises :class:`ConfigError` when ``total`` cannot be spread so.
    """
    mean = total / n
    if mean >= single_share + (1 - single_share) * 2.5:
        p1 = single_share
    else:
        p1 = float(np.clip((2.5 - mean) / 1.5, 0.0, 1.0))
    n1 = min(n, round(p1 * n))
    n2 = n - n1
    counts = np.ones(n, dtype=np.int64)
    rest = total - n1 - 2 * n2
    if n2 > 0 and rest > 0 and cap > 2:
        counts[n1:] = 2 + _lognormal_tail(rng, n2, rest, sigma, cap - 2)
    elif n2 > 0:
        counts[n1:] = 2
    counts = counts[rng.permutation(n)]
    excess = int(counts.sum()) - total
    while excess > 0:  # only when n2 songs of 2 already overshoot a tiny total
        big = np.flatnonzero(counts > 1)
        chosen = rng.choice(big, size=min(excess, len(big)), replace=False)
        counts[chosen] -= 1
        excess -= len(chosen)
    if counts.sum() != total:
        raise ConfigError(
            f"data.synthetic.events is too large for data.synthetic.users: cannot spread {total} "
            f"(user, song) pairs over {n} songs with at most {cap} listeners each"
        )
    return counts


def _lognormal_tail(rng: np.random.Generator, n: int, total: int, sigma: float, cap: int) -> np.ndarray:
    """``n`` counts in ``[0, cap]`` from a scaled lognormal, summing to ``total`` where room allows."""
    raw = rng.lognormal(0.0, sigma, n)
    lo, hi = 0.0, float(cap + 2)
    for _ in range(60):  # scale the tail so the sum lands on the target
        mid = (lo + hi) / 2
        if np.minimum(np.floor(raw * mid), cap).sum() > total:
            hi = mid
        else:
            lo = mid
    tail = np.minimum(np.floor(raw * lo), cap).astype(np.int64)
    short = total - int(tail.sum())
    while short > 0:
        room = np.flatnonzero(tail < cap)
        if len(room) == 0:
            break
        chosen = rng.choice(room, size=min(short, len(room)), replace=False)
        tail[chosen] += 1
        short -= len(chosen)
    return tail
