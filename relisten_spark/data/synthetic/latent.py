"""The latent taste space of the synthetic data: clusters, and the genre and language mix of each."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from relisten_spark.data.synthetic.calibration import LANGUAGE, N_GENRES, TOP_GENRES
from relisten_spark.data.synthetic.sampling import rake

N_CLUSTERS = 20  # taste clusters K
DIM = 16  # song and user factor width
ARTIST_DIM = 8  # artist factor width


@dataclass
class Latent:
    """The taste clusters and what hangs on them."""

    centres: np.ndarray  # K x DIM unit vectors
    cluster_share: np.ndarray  # K
    genre_ids: np.ndarray  # N_GENRES genre id values
    genre_probs: np.ndarray  # K x N_GENRES
    genre_effect: np.ndarray  # N_GENRES
    genre_taste: np.ndarray  # K x N_GENRES, cluster-level genre affinity
    languages: np.ndarray
    language_probs: np.ndarray  # K x languages
    artist_projection: np.ndarray  # DIM x ARTIST_DIM


def draw_latent(rng: np.random.Generator) -> Latent:
    """Cluster centres, genre ids and per-cluster genre and language mixes averaging to the marginals."""
    centres = rng.normal(size=(N_CLUSTERS, DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    top = np.array(list(TOP_GENRES), dtype=np.int64)
    others = np.setdiff1d(rng.choice(np.arange(1, 2300), size=N_GENRES * 2, replace=False), top)[
        : N_GENRES - len(top)
    ]
    genre_ids = np.concatenate([top, np.sort(others)])
    tail_share = 100.0 - sum(TOP_GENRES.values())
    tail = 1.0 / np.arange(1, len(others) + 1) ** 1.1
    base = np.concatenate([np.array(list(TOP_GENRES.values())), tail / tail.sum() * tail_share])
    base /= base.sum()
    cluster_share = rng.dirichlet(np.full(N_CLUSTERS, 4.0))
    genre_probs = rake(rng.dirichlet(base * 40 + 1e-3, size=N_CLUSTERS), cluster_share, base)
    genre_effect = rng.normal(size=N_GENRES)
    genre_effect[0] = 0.0  # 465: the biggest genre, no extra loyalty (thesis 3.6)
    genre_effect[list(TOP_GENRES).index(726)] = 2.5  # 726: the highest repeat rate
    languages = np.array(list(LANGUAGE), dtype=np.int64)
    lang_base = np.array(list(LANGUAGE.values()))
    lang_base = lang_base / lang_base.sum()
    language_probs = rake(rng.dirichlet(lang_base * 12 + 1e-3, size=N_CLUSTERS), cluster_share, lang_base)
    return Latent(
        centres=centres,
        cluster_share=cluster_share,
        genre_ids=genre_ids,
        genre_probs=genre_probs,
        genre_effect=genre_effect,
        genre_taste=rng.normal(size=(N_CLUSTERS, N_GENRES)),
        languages=languages,
        language_probs=language_probs,
        artist_projection=rng.normal(size=(DIM, ARTIST_DIM)) / np.sqrt(DIM),
    )
