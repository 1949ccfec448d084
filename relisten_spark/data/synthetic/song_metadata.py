"""Text columns of songs.csv and song_extra_info.csv: artist names, credits, titles, ISRC codes.

Also which catalogue songs each file lists, and in which order (CALIBRATION 3, 4).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from relisten_spark.data.synthetic.calibration import (
    ARTIST_SEPARATORS,
    CREDIT_SEPARATORS,
    EMPTY_CREDITS,
    ISRC_COUNTRY,
    ISRC_DECADES,
    ISRC_DUPLICATE_SHARE,
    ISRC_EMPTY_SHARE,
    ISRC_MALFORMED_SHARE,
    ISRC_OTHER_COUNT,
    ISRC_OTHER_COUNTRIES,
    ISRC_YEARS,
    LANGUAGE,
    NO_EXTRA_META_SHARE,
    NO_SONG_META_SHARE,
)
from relisten_spark.data.synthetic.catalogue import VARIOUS_ARTISTS, Catalogue
from relisten_spark.data.synthetic.latent import Latent
from relisten_spark.data.synthetic.names import SCRIPTS, names, nicknamed, script_of, titles
from relisten_spark.data.synthetic.sampling import char_strings, draw_keys

MAX_TEXT = 254  # KKBOX cuts names and credits at 254 characters
PIPE_SPACES = np.array(["|", "| ", "|  "], dtype=object)  # "|" followed by 0, 1 or 2 spaces


@dataclass
class SongMetadata:
    """Text columns per catalogue song (unquoted) and the songs each metadata file lists."""

    artist_name: np.ndarray  # the name of each song's artist
    composer: np.ndarray
    lyricist: np.ndarray
    genre_ids: np.ndarray  # "465|1609" or empty
    language: np.ndarray  # language code as text, a few empty
    name: np.ndarray  # title
    isrc: np.ndarray
    in_songs: np.ndarray  # bool: the song has a songs.csv row
    songs_rows: np.ndarray  # catalogue indices of the songs.csv rows, in file order
    extra_rows: np.ndarray  # catalogue indices of the song_extra_info.csv rows, in file order


def draw_song_metadata(
    text_rng: np.random.Generator, isrc_rng: np.random.Generator, cat: Catalogue, lat: Latent, played: int
) -> SongMetadata:
    """Text columns of every catalogue song; a few of the ``played`` first songs lack a metadata row."""
    artist_names = _artist_names(text_rng, cat)
    composer, lyricist = _credits(text_rng, cat, artist_names)
    n_catalogue = len(cat.artist)
    meta = text_rng.random(n_catalogue)
    in_songs = np.ones(n_catalogue, dtype=bool)
    in_songs[:played] = meta[:played] >= NO_SONG_META_SHARE
    in_extra = in_songs.copy()
    in_extra[:played] &= meta[:played] >= NO_SONG_META_SHARE + NO_EXTRA_META_SHARE
    language = cat.language.astype(str).astype(object)
    listed = np.flatnonzero(in_songs)
    language[text_rng.choice(listed, size=max(1, round(len(listed) * 2e-6)), replace=False)] = ""
    songs_rows = text_rng.permutation(np.flatnonzero(in_songs))
    name = titles(text_rng, cat.language)
    isrc = _isrc(isrc_rng, cat)
    extra_rows = text_rng.permutation(np.flatnonzero(in_extra))
    return SongMetadata(
        artist_name=artist_names[cat.artist],
        composer=composer,
        lyricist=lyricist,
        genre_ids=_genre_strings(cat.genres, lat.genre_ids),
        language=language,
        name=name,
        isrc=isrc,
        in_songs=in_songs,
        songs_rows=songs_rows,
        extra_rows=extra_rows,
    )


def _genre_strings(genres: np.ndarray, genre_values: np.ndarray) -> np.ndarray:
    """Genre id tokens joined by ``|`` (empty for none).

    >>> _genre_strings(np.array([[0, 1], [1, -1], [-1, -1]]), np.array([465, 1609]))
    array(['465|1609', '1609', ''], dtype=object)
    """
    token = np.where(genres >= 0, genre_values[np.maximum(genres, 0)].astype(str), "").astype(object)
    out = token[:, 0].copy()
    for j in range(1, genres.shape[1]):
        sel = np.flatnonzero(genres[:, j] >= 0)
        out[sel] = out[sel] + "|" + token[sel, j]
    return out


def _cut(values: np.ndarray) -> np.ndarray:
    return pd.Series(values).str.slice(0, MAX_TEXT).to_numpy(dtype=object)


def _artist_names(rng: np.random.Generator, cat: Catalogue) -> np.ndarray:
    """One name per artist; some combined ("A & B"), a few nicknamed, artist 0 "Various Artists"."""
    n = len(cat.artist_pop)
    out = names(rng, script_of(rng, cat.artist_language))
    combined = np.flatnonzero(rng.random(n) < 0.055)  # "A & B", "A feat. B", "A| B", ...
    seps = draw_keys(rng, ARTIST_SEPARATORS, len(combined))
    pipe_space = PIPE_SPACES[rng.choice(3, len(combined), p=[0.1327, 0.8664, 0.0009])]
    seps = np.where(seps == "|", pipe_space, seps)
    partner = out[rng.integers(0, n, len(combined))]
    out[combined] = out[combined] + seps + partner
    quoted = rng.choice(n, size=max(0, round(n * 1e-4)), replace=False)
    out[quoted] = nicknamed(rng, len(quoted))
    out = _sprinkle(rng, out, nbsp=0.00035)
    out[VARIOUS_ARTISTS] = "Various Artists"
    return _cut(out)


def _sprinkle(
    rng: np.random.Generator, values: np.ndarray, nbsp: float = 0.0, tab: float = 0.0, pad: float = 0.0
) -> np.ndarray:
    """KKBOX's whitespace quirks: a U+00A0 for a space, a TAB inside or after, a trailing space."""
    values = values.copy()
    n = len(values)
    s = pd.Series(values, dtype=object)
    if nbsp:
        sel = np.flatnonzero((rng.random(n) < nbsp * 2) & s.str.contains(" ", regex=False).to_numpy())
        values[sel] = s.iloc[sel].str.replace(" ", "\u00a0", n=1, regex=False).to_numpy()
    if tab:
        sel = np.flatnonzero(rng.random(n) < tab)
        values[sel] = np.where(
            rng.random(len(sel)) < 0.5,
            values[sel] + "\t",
            pd.Series(values[sel]).str.slice(0, 1) + "\t" + pd.Series(values[sel]).str.slice(1),
        )
    if pad:
        sel = np.flatnonzero(rng.random(n) < pad)
        values[sel] = np.where(rng.random(len(sel)) < 0.7, values[sel] + " ", " " + values[sel])
    return values


@dataclass
class _NamePool:
    """Names of people who write songs, stored in blocks of one language each."""

    names: np.ndarray
    order: np.ndarray  # pool rows sorted by language
    block_lang: np.ndarray  # language of each block
    block_start: np.ndarray  # first position of each block in ``order``
    block_size: np.ndarray

    def draw(self, rng: np.random.Generator, language: np.ndarray) -> np.ndarray:
        """Pool rows for elements of ``language``: same-language names, skewed to the first ones."""
        k = np.searchsorted(self.block_lang, language)
        k = np.clip(k, 0, len(self.block_lang) - 1)
        ok = self.block_lang[k] == language
        within = np.floor(rng.random(len(language)) ** 1.5 * self.block_size[k]).astype(np.int64)
        anywhere = rng.integers(0, len(self.names), len(language))
        return np.where(ok, self.order[self.block_start[k] + within], anywhere)


def _name_pool(rng: np.random.Generator, size: int) -> _NamePool:
    """``size`` people in the calibrated language mix, named in a script of their language."""
    language = rng.choice(
        np.array(list(LANGUAGE)), size=size, p=np.array(list(LANGUAGE.values())) / sum(LANGUAGE.values())
    )
    script = script_of(rng, language)
    # credits name people, not bands
    script[np.isin(script, [SCRIPTS.index("band"), SCRIPTS.index("caps")])] = SCRIPTS.index("person")
    pool = names(rng, script)
    quoted = rng.choice(size, size=max(1, round(size * 0.005)), replace=False)
    pool[quoted] = nicknamed(rng, len(quoted))
    order = np.argsort(language, kind="stable")
    block_lang, block_start, block_size = np.unique(language[order], return_index=True, return_counts=True)
    return _NamePool(pool, order, block_lang, block_start, block_size)


def _credits(
    rng: np.random.Generator, cat: Catalogue, artist_names: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """composer and lyricist columns (CALIBRATION 3.3)."""
    n = len(cat.artist)
    pool = _name_pool(rng, max(50, round(0.3 * n)))
    house = pool.draw(rng, cat.artist_language)  # each artist's usual composer
    lang = cat.language

    def more(sel: np.ndarray) -> np.ndarray:
        return pool.draw(rng, lang[sel])

    first = np.where(rng.random(n) < 0.5, house[cat.artist], pool.draw(rng, lang))
    n_comp = np.where(rng.random(n) < 0.644, 1, 2 + rng.geometric(0.45, n) - 1).clip(1, 23)
    n_comp[rng.random(n) < 2e-4] = 23  # long credit lists, cut at 254 characters like KKBOX's
    composer = _join_credit(rng, pool.names[first], pool.names, more, n_comp, (0.1578, 0.8407, 0.0015))
    own = rng.random(n) < 0.089
    composer[own] = artist_names[cat.artist[own]]

    lyr_first = np.where(rng.random(n) < 0.4, house[cat.artist], pool.draw(rng, lang))
    n_lyr = np.where(rng.random(n) < 0.733, 1, 2 + rng.geometric(0.5, n) - 1).clip(1, 23)
    lyricist = _join_credit(rng, pool.names[lyr_first], pool.names, more, n_lyr, (0.3018, 0.6952, 0.003))
    same = rng.random(n) < 0.51
    lyricist[same] = composer[same]

    comp_empty, lyr_empty = _empty_credits(rng, lang)
    composer = _sprinkle(rng, composer, nbsp=0.00033, tab=0.000175, pad=0.0024)
    lyricist = _sprinkle(rng, lyricist, nbsp=0.00005, tab=0.000175, pad=0.0019)
    composer[rng.random(n) < 0.0002] = "Unknown"
    lyricist[rng.random(n) < 0.000125] = "-"
    composer[comp_empty] = ""
    lyricist[lyr_empty] = ""
    return _cut(composer), _cut(lyricist)


def _empty_credits(rng: np.random.Generator, lang: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which songs have no composer and which no lyricist: per-language shares, mostly both empty."""
    n = len(lang)
    empty = np.array([EMPTY_CREDITS.get(int(x), (0.42, 0.73)) for x in np.unique(lang)])
    k = np.searchsorted(np.unique(lang), lang)
    comp_empty_p, lyr_empty_p = empty[k, 0], empty[k, 1]
    comp_empty = rng.random(n) < comp_empty_p
    lyr_empty_given = np.clip((lyr_empty_p - 0.99 * comp_empty_p) / np.maximum(1 - comp_empty_p, 1e-9), 0, 1)
    lyr_empty = np.where(comp_empty, rng.random(n) < 0.99, rng.random(n) < lyr_empty_given)
    return comp_empty, lyr_empty


def _join_credit(
    rng: np.random.Generator, first: np.ndarray, pool: np.ndarray, more: Callable[[np.ndarray], np.ndarray],
    count: np.ndarray, pipe_spaces: tuple[float, float, float],
) -> np.ndarray:  # fmt: skip
    """``first`` followed by ``count - 1`` more names (pool rows ``more(selected elements)``).

    One separator per value; after ``|`` 0, 1 or 2 spaces with the given shares.
    """
    n = len(first)
    sep = draw_keys(rng, CREDIT_SEPARATORS, n)
    spaces = rng.choice(3, size=n, p=np.array(pipe_spaces) / sum(pipe_spaces))
    sep = np.where(sep == "|", PIPE_SPACES[spaces], sep)
    sep = np.where(sep == "/", np.where(rng.random(n) < 0.5, " / ", "/"), sep)
    sep = np.where(sep == ";", "; ", sep)
    out = first.copy()
    for j in range(1, int(count.max()) if n else 1):
        sel = np.flatnonzero(count > j)
        out[sel] = out[sel] + sep[sel] + pool[more(sel)]
    return out


def _isrc(rng: np.random.Generator, cat: Catalogue) -> np.ndarray:
    """ISRC codes CC RRR YY NNNNN (CALIBRATION 4): prefixes follow artists, 13% empty, 2% shared."""
    n = len(cat.artist)
    prefix = _isrc_prefixes(rng, cat)
    years = np.arange(1918, 2018)
    year_p = np.zeros(len(years))
    for (lo, hi), share in ISRC_DECADES.items():
        year_p[(years >= lo) & (years < hi)] = share / (hi - lo)
    year_p[years >= 2000] = ISRC_YEARS
    year = rng.choice(years, size=n, p=year_p / year_p.sum())
    year = np.where(cat.release > 0, np.where(cat.release > 0.9, 2017, 2016), year)
    yy = pd.Series(year % 100).map("{:02d}".format).to_numpy(dtype=object)
    number = pd.Series(rng.integers(0, 100000, n)).map("{:05d}".format).to_numpy(dtype=object)
    isrc = prefix + yy + number
    shared = np.flatnonzero(rng.random(n) < ISRC_DUPLICATE_SHARE)
    isrc[shared] = isrc[rng.integers(0, n, len(shared))]
    odd = np.flatnonzero(rng.random(n) < ISRC_MALFORMED_SHARE)  # e.g. TWB53966001H
    isrc[odd] = (
        "TWB" + pd.Series(rng.integers(10000000, 99999999, len(odd))).astype(str).to_numpy(dtype=object) + "H"
    )
    isrc[rng.random(n) < ISRC_EMPTY_SHARE] = ""
    return isrc


def _isrc_prefixes(rng: np.random.Generator, cat: Catalogue) -> np.ndarray:
    """Country and registrant (CC RRR) per song: mostly its artist's, registrants skewed per country."""
    n = len(cat.artist)
    codes = list(ISRC_COUNTRY) + ISRC_OTHER_COUNTRIES.split()
    others = 1.0 / np.arange(1, len(ISRC_OTHER_COUNTRIES.split()) + 1)
    weights = np.concatenate(
        [np.array(list(ISRC_COUNTRY.values()), dtype=np.float64), others / others.sum() * ISRC_OTHER_COUNT]
    )
    weights /= weights.sum()
    n_reg = max(30, round(0.03 * n))
    per_country = np.maximum(1, np.round(weights * n_reg)).astype(np.int64)
    alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    registrants = char_strings(rng, alnum, int(per_country.max()) * len(codes), 3, 3).reshape(len(codes), -1)

    def prefixes(m: int) -> np.ndarray:
        country = rng.choice(len(codes), size=m, p=weights)
        within = np.floor(rng.random(m) ** 2 * per_country[country]).astype(np.int64)
        return np.array(codes, dtype=object)[country] + registrants[country, within]

    return np.where(rng.random(n) < 0.8, prefixes(len(cat.artist_pop))[cat.artist], prefixes(n))
