"""The numeric song catalogue of the synthetic data: artists, clusters, languages, genres, lengths."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from relisten_spark.data.synthetic.calibration import (
    GENRE_COUNT,
    N_GENRES,
    SONG_LENGTH_QUANTILES,
    VARIOUS_ARTISTS_SHARE,
)
from relisten_spark.data.synthetic.latent import ARTIST_DIM, DIM, N_CLUSTERS, Latent
from relisten_spark.data.synthetic.sampling import degree_sequence, draw_keys, draw_rows

VARIOUS_ARTISTS = 0  # the artist index named "Various Artists"
MAX_GENRES = 7  # genre slots per song


@dataclass
class Catalogue:
    """Per song (played songs first, then the never-played ones) and per artist attributes."""

    artist: np.ndarray  # per song
    cluster: np.ndarray
    language: np.ndarray  # language code per song
    genres: np.ndarray  # songs x MAX_GENRES genre indices, -1 = none
    length_ms: np.ndarray
    release: np.ndarray  # event-clock time in [0, 1) before which nobody plays it
    song_effect: np.ndarray
    factor: np.ndarray  # songs x DIM
    artist_language: np.ndarray
    artist_effect: np.ndarray
    artist_factor: np.ndarray  # artists x ARTIST_DIM
    artist_pop: np.ndarray


def draw_catalogue(rng: np.random.Generator, n_songs: int, lat: Latent) -> Catalogue:
    """Numeric song and artist attributes for ``n_songs`` catalogue songs."""
    artist, n_artists = _song_artists(rng, n_songs)
    a_cluster = rng.choice(N_CLUSTERS, size=n_artists, p=lat.cluster_share)
    a_language = draw_rows(rng, a_cluster, lat.language_probs)
    a_genre = draw_rows(rng, a_cluster, lat.genre_probs)
    a_pop = rng.normal(size=n_artists)
    a_factor = (
        lat.centres[a_cluster] @ lat.artist_projection * 2.0 + rng.normal(size=(n_artists, ARTIST_DIM)) * 0.35
    )

    cluster = np.where(
        rng.random(n_songs) < 0.85, a_cluster[artist], rng.choice(N_CLUSTERS, n_songs, p=lat.cluster_share)
    )
    own_language = draw_rows(rng, cluster, lat.language_probs)
    keep = (rng.random(n_songs) < 0.9) & (artist != VARIOUS_ARTISTS)
    language = lat.languages[np.where(keep, a_language[artist], own_language)]
    genres = _song_genres(rng, a_genre[artist], cluster, lat)

    q = np.array(SONG_LENGTH_QUANTILES, dtype=np.float64)
    length_ms = np.exp(np.interp(rng.random(n_songs), q[:, 0], np.log(q[:, 1]))).round().astype(np.int64)
    new = rng.random(n_songs) < 0.12
    release = np.where(new, rng.uniform(0.0, 0.95, n_songs), 0.0)
    factor = lat.centres[cluster] + rng.normal(size=(n_songs, DIM)) * (0.45 / np.sqrt(DIM))
    return Catalogue(
        artist=artist,
        cluster=cluster,
        language=language,
        genres=genres,
        length_ms=length_ms,
        release=release,
        song_effect=rng.normal(size=n_songs),
        factor=factor,
        artist_language=lat.languages[a_language],
        artist_effect=rng.normal(size=n_artists),
        artist_factor=a_factor,
        artist_pop=a_pop,
    )


def _song_artists(rng: np.random.Generator, n_songs: int) -> tuple[np.ndarray, int]:
    """The artist index of each song (heavy-tailed songs per artist, Various Artists first); the artists."""
    n_artists = max(2, round(0.12 * n_songs))
    various = round(VARIOUS_ARTISTS_SHARE * n_songs)
    cap = max(n_songs // 200, 4 * -(-(n_songs - various) // (n_artists - 1)))
    per_artist = degree_sequence(rng, n_artists - 1, n_songs - various, 0.5, 1.6, cap)
    per_artist = np.concatenate([[various], per_artist])
    return rng.permutation(np.repeat(np.arange(n_artists), per_artist)), n_artists


def _song_genres(
    rng: np.random.Generator, artist_genre: np.ndarray, cluster: np.ndarray, lat: Latent
) -> np.ndarray:
    """``songs x MAX_GENRES`` genre indices (-1 = none): the first mostly the artist's, no repeats."""
    n_songs = len(cluster)
    n_genres = draw_keys(rng, GENRE_COUNT, n_songs).astype(np.int64)
    genres = np.full((n_songs, MAX_GENRES), -1, dtype=np.int64)
    first = np.where(rng.random(n_songs) < 0.7, artist_genre, draw_rows(rng, cluster, lat.genre_probs))
    genres[:, 0] = np.where(n_genres > 0, first, -1)
    for j in range(1, MAX_GENRES):
        sel = np.flatnonzero(n_genres > j)
        chosen = draw_rows(rng, cluster[sel], lat.genre_probs)
        for _ in range(8):  # no genre twice in one song
            clash = (genres[sel, :j] == chosen[:, None]).any(axis=1)
            if not clash.any():
                break
            chosen[clash] = rng.integers(0, N_GENRES, int(clash.sum()))
        genres[sel, j] = chosen
    return genres
