"""Pandas reference of the F-core families (tests only), written from FEATURES.md with plain
Python over the tiny dataset: label codes, member / song tables, ISRC, popularity counts, the
step-8 "add" features and the step-9 LightGBM extras.

:func:`reference` returns one row per event (index ``idx``) with those columns for the full or
the serving profile. Serving: every aggregate of row ``i`` is over rows with ``idx < i``; fits
(codes, fill means) use the fit rows (train rows with ``idx < cutoff``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import date

import numpy as np
import pandas as pd

T0, T1, T2 = 1_471_190_400, 1_484_236_800, 1_488_211_200
KKBOX_TRAIN, KKBOX_TEST = 7_377_418, 2_556_790
SOURCES = ("source_system_tab", "source_screen_name", "source_type")
NAN = float("nan")


def _none(x: object) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def fit_codes(values: Iterable[object]) -> dict[object, int]:
    """value -> 1..n over the sorted distinct non-missing values."""
    return {v: i + 1 for i, v in enumerate(sorted({v for v in values if not _none(v)}))}


def code(codes: dict[object, int], value: object) -> int:
    """0 missing, the fitted code, or n + 1 for an unseen value."""
    if _none(value):
        return 0
    return codes.get(value, len(codes) + 1)


def log1p(n: float | None) -> float:
    return NAN if _none(n) else math.log1p(n)


def epoch_utc8(yyyymmdd: object) -> float:
    if _none(yyyymmdd):
        return NAN
    text = str(int(yyyymmdd))
    try:
        day = date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return NAN
    return (day - date(1970, 1, 1)).days * 86400 - 8 * 3600


def first_artist(name: str) -> str:
    return name.split("and")[0].split(",")[0].split(" feat")[0].split("&")[0].strip()


def first_credit(name: str) -> str:
    return name.split("|")[0].split("/")[0].split("\\")[0].split(";")[0].strip()


def credit_count(name: object) -> int:
    return 0 if _none(name) else sum(name.count(s) for s in ("|", "/", "\\", ";")) + 1


def isrc_year(isrc: object) -> float:
    if _none(isrc):
        return NAN
    yy = float(isrc[5:7])
    return 2000 + yy if yy < 18 else 1900 + yy


def timestamp(idx: int, n_train: int, n_total: int) -> float:
    if idx < n_train:
        return idx / (n_train - 1) * (T1 - T0) + T0
    return (idx - (n_train - 1)) / (n_total - n_train) * (T2 - T1) + T1


# ---- static tables ----------------------------------------------------------------------------
def song_rows(data: dict[str, pd.DataFrame], song_ids: Iterable[str]) -> dict[str, dict]:
    """Parsed raw attributes of every song id (step 1, step 3)."""
    meta = {r.song_id: r for r in data["songs"].itertuples()}
    extra = {r.song_id: r for r in data["song_extra"].itertuples()}
    out = {}
    for sid in song_ids:
        m, e = meta.get(sid), extra.get(sid)
        isrc = None if e is None or _none(e.isrc) else e.isrc
        row: dict = {"has_meta": m is not None, "isrc": isrc}
        if m is None:
            row.update(
                length=None,
                genres=(None, None, None),
                genre_cnt=None,
                artist=None,
                artist_cnt=None,
                featured=None,
                composer=None,
                composer_cnt=None,
                lyricist=None,
                lyricist_cnt=None,
                language=None,
            )
        else:
            tokens = [] if _none(m.genre_ids) else m.genre_ids.split("|")
            genres = [int(tokens[j]) if j < len(tokens) else None for j in range(3)]
            artist = None if _none(m.artist_name) else m.artist_name
            lang = None if _none(m.language) or m.language == -1 else int(m.language)
            row.update(
                length=math.log1p(m.song_length),
                genres=tuple(genres),
                genre_cnt=len(tokens),
                artist=None if artist is None else first_artist(artist),
                artist_cnt=None
                if artist is None
                else sum(artist.count(s) for s in ("and", ",", " feat", "&")) + 1,
                featured=None if artist is None else int(" feat" in artist),
                composer=None if _none(m.composer) else first_credit(m.composer),
                composer_cnt=credit_count(m.composer),
                lyricist=None if _none(m.lyricist) else first_credit(m.lyricist),
                lyricist_cnt=credit_count(m.lyricist),
                language=lang,
            )
        row.update(
            cc=None if isrc is None else isrc[0:2],
            xxx=None if isrc is None else isrc[2:5],
            yy=isrc_year(isrc),
            genre_key=row["genres"][0],
        )
        out[sid] = row
    return out


COUNT_KEYS = {
    "artist": "artist",
    "composer": "composer",
    "lyricist": "lyricist",
    "genre": "genre_key",
    "cc": "cc",
    "xxx": "xxx",
    "yy": "yy",
}


def reference(data: dict[str, pd.DataFrame], profile: str, cutoff: int | None = None) -> pd.DataFrame:
    """The F-core columns of every event of ``data`` (tiny_pandas frames), index ``idx``."""
    serving = profile == "serving"
    ev = data["events"].sort_values("idx").reset_index(drop=True)
    is_fit = (
        (ev["split"] == "train") & (ev["idx"] < cutoff) if serving else ev["split"].isin(["train", "test"])
    ).to_numpy()
    out = pd.DataFrame({"idx": ev["idx"].astype(int)})
    _event_codes(out, ev, is_fit)
    reg, exp = _member_columns(out, ev, data, ev[is_fit])
    songs = song_rows(data, set(ev["song_id"]))
    fit_songs = set(ev[is_fit]["song_id"])
    _song_columns(out, ev, songs, fit_songs)
    _popularity(out, ev, songs, serving)
    out = _add_features(out, ev, songs, fit_songs, is_fit, serving)
    extra = _neighbour_columns(out, ev, serving, reg, exp)
    return pd.concat([out, pd.DataFrame(extra)], axis=1).set_index("idx")


def _event_codes(out: pd.DataFrame, ev: pd.DataFrame, is_fit: np.ndarray) -> None:
    """Event codes and source."""
    fit_ev = ev[is_fit]
    for c in SOURCES:
        codes = fit_codes(fit_ev[c])
        out[c] = [code(codes, v) for v in ev[c]]
    triples = [
        int(a) * 10000 + int(b) * 100 + int(c) for a, b, c in out[list(SOURCES)].itertuples(index=False)
    ]
    out["source"] = [code(fit_codes(np.array(triples)[is_fit].tolist()), t) for t in triples]


def _member_columns(
    out: pd.DataFrame, ev: pd.DataFrame, data: dict[str, pd.DataFrame], fit_ev: pd.DataFrame
) -> tuple[list, list]:
    """The member table's columns; returns (registration, expiration) epochs per event."""
    members = {r.msno: r for r in data["members"].itertuples()}
    fit_users = set(fit_ev["msno"])
    msno_codes = fit_codes(fit_users)
    member_codes = {
        c: fit_codes(getattr(members[u], c) for u in fit_users if u in members)
        for c in ("city", "gender", "registered_via")
    }
    out["msno_code"] = [code(msno_codes, u) for u in ev["msno"]]
    for c in ("city", "gender", "registered_via"):
        out[c] = [code(member_codes[c], getattr(members[u], c) if u in members else None) for u in ev["msno"]]
    bd = [members[u].bd if u in members else None for u in ev["msno"]]
    out["bd"] = [float(b) if not _none(b) and 0 < b < 75 else NAN for b in bd]
    out["bd_missing"] = out["bd"].isna().astype(int)
    reg = [epoch_utc8(members[u].registration_init_time) if u in members else NAN for u in ev["msno"]]
    exp = [epoch_utc8(members[u].expiration_date) if u in members else NAN for u in ev["msno"]]
    out["registration_init_time"], out["expiration_date"] = reg, exp
    out["duration"] = [NAN if _none(r) or _none(e) else int(e - r) for r, e in zip(reg, exp, strict=True)]
    return reg, exp


def _song_columns(out: pd.DataFrame, ev: pd.DataFrame, songs: dict[str, dict], fit_songs: set) -> None:
    """The song table's columns."""
    fs = [songs[s] for s in fit_songs]
    enc = {
        "song_code": fit_codes(fit_songs),
        "artist_name": fit_codes(r["artist"] for r in fs),
        "composer": fit_codes(r["composer"] for r in fs),
        "lyricist": fit_codes(r["lyricist"] for r in fs),
        "language": fit_codes(r["language"] for r in fs),
        "cc": fit_codes(r["cc"] for r in fs),
        "xxx": fit_codes(r["xxx"] for r in fs),
        "genre": fit_codes(g for r in fs for g in r["genres"]),
    }
    per = [songs[s] for s in ev["song_id"]]
    out["song_code"] = [code(enc["song_code"], s) for s in ev["song_id"]]
    out["song_length"] = [NAN if r["length"] is None else r["length"] for r in per]
    out["song_id_missing"] = out["song_length"].isna().astype(int)
    for j, name in enumerate(("first_genre_id", "second_genre_id", "third_genre_id")):
        out[name] = [code(enc["genre"], r["genres"][j]) for r in per]
    for name, key in (
        ("artist_name", "artist"),
        ("composer", "composer"),
        ("lyricist", "lyricist"),
        ("language", "language"),
        ("cc", "cc"),
        ("xxx", "xxx"),
    ):
        out[name] = [code(enc[name], r[key]) for r in per]
    for name, key in (
        ("genre_id_cnt", "genre_cnt"),
        ("artist_cnt", "artist_cnt"),
        ("is_featured", "featured"),
        ("composer_cnt", "composer_cnt"),
        ("lyricist_cnt", "lyricist_cnt"),
    ):
        out[name] = [NAN if r[key] is None else r[key] for r in per]
    out["yy"] = [r["yy"] for r in per]
    out["isrc_missing"] = [int(r["isrc"] is None) for r in per]


def _popularity(out: pd.DataFrame, ev: pd.DataFrame, songs: dict[str, dict], serving: bool) -> None:
    """Popularity counts."""
    idx = ev["idx"].to_numpy()
    users, sids = ev["msno"].tolist(), ev["song_id"].tolist()
    counted = ev["split"].isin(["train", "test"]).to_numpy()

    def rows_before(i: int) -> np.ndarray:
        return (idx < idx[i]) if serving else counted

    n = len(ev)
    out["msno_rec_cnt"] = [
        log1p(sum(1 for j in np.flatnonzero(rows_before(i)) if users[j] == users[i])) for i in range(n)
    ]
    out["song_rec_cnt"] = [
        log1p(sum(1 for j in np.flatnonzero(rows_before(i)) if sids[j] == sids[i])) for i in range(n)
    ]
    for prefix, key in COUNT_KEYS.items():
        song_cnt, rec_cnt = [], []
        for i in range(n):
            k = songs[sids[i]][key]
            if _none(k):
                song_cnt.append(NAN)
                rec_cnt.append(NAN)
                continue
            rows = [j for j in np.flatnonzero(rows_before(i)) if songs[sids[j]][key] == k]
            song_cnt.append(log1p(len({sids[j] for j in rows})))
            rec_cnt.append(log1p(len(rows)))
        out[f"{prefix}_song_cnt"], out[f"{prefix}_rec_cnt"] = song_cnt, rec_cnt


NN_STEMS = ("song_length", "artist_song_cnt", "artist_rec_cnt", "song_rec_cnt", "yy")


def _nn_fill(
    out: pd.DataFrame, sids: list, songs: dict[str, dict], fit_songs: set, is_fit: np.ndarray, serving: bool
) -> dict[str, float]:
    """Step 7's NN fill: song means (serving: static over the fit songs, counts over the fit rows)."""
    if serving:
        static = {c: np.nanmean([_value(songs[s], c) for s in fit_songs]) for c in ("song_length", "yy")}
        dynamic = {
            c: out.loc[is_fit, c].mean() for c in ("artist_song_cnt", "artist_rec_cnt", "song_rec_cnt")
        }
        return {**static, **dynamic}
    first = ~pd.Series(sids).duplicated().to_numpy()
    return {c: out.loc[first, c].mean() for c in NN_STEMS}


def _basis(ev: pd.DataFrame, serving: bool) -> np.ndarray:
    """The TP+T basis (serving: every row)."""
    users, sids = ev["msno"].tolist(), ev["song_id"].tolist()
    if serving:
        return np.ones(len(ev), dtype=bool)
    test_pairs = {(u, s) for u, s, sp in zip(users, sids, ev["split"], strict=True) if sp == "test"}
    return np.array(
        [
            sp == "test" or (sp == "train" and (u, s) not in test_pairs)
            for u, s, sp in zip(users, sids, ev["split"], strict=True)
        ]
    )


def _add_features(
    out: pd.DataFrame,
    ev: pd.DataFrame,
    songs: dict[str, dict],
    fit_songs: set,
    is_fit: np.ndarray,
    serving: bool,
) -> pd.DataFrame:
    """Step 8: NN values, basis, shares, member_add."""
    idx = ev["idx"].to_numpy()
    users, sids = ev["msno"].tolist(), ev["song_id"].tolist()
    n = len(ev)
    fill = _nn_fill(out, sids, songs, fit_songs, is_fit, serving)
    nn = {c: out[c].fillna(fill[c]).to_numpy() for c in NN_STEMS}
    basis = _basis(ev, serving)

    def counted_rows(i: int, entity: list) -> list[int]:
        if serving:
            return [j for j in range(n) if idx[j] < idx[i] and entity[j] == entity[i]]
        return [j for j in range(n) if basis[j] and entity[j] == entity[i]]

    values = {
        "msno_artist_name_prob": out["artist_name"].to_numpy(),
        "msno_first_genre_id_prob": out["first_genre_id"].to_numpy(),
        "msno_xxx_prob": out["xxx"].to_numpy(),
        "msno_language_prob": out["language"].to_numpy(),
        "msno_yy_prob": nn["yy"],
        "msno_source_prob": out["source"].to_numpy(),
    }
    song_values = {f"song_{c}_prob": out[c].to_numpy() for c in SOURCES}
    for table, entity in ((values, users), (song_values, sids)):
        for name, value in table.items():
            col = []
            for i in range(n):
                rows = counted_rows(i, entity)
                col.append(sum(1 for j in rows if value[j] == value[i]) / len(rows) if rows else NAN)
            out[name] = col
    member_add = _member_add(out, [counted_rows(i, users) for i in range(n)], nn, serving)
    return pd.concat([out, pd.DataFrame(member_add)], axis=1)


def _member_add(
    out: pd.DataFrame, counted: list[list[int]], nn: dict[str, np.ndarray], serving: bool
) -> dict[str, list]:
    """member_add of every row over its counted rows."""
    member_add: dict[str, list] = {}
    for rows in counted:
        for stem in NN_STEMS:
            vals = [nn[stem][j] for j in rows]
            member_add.setdefault(f"msno_{stem}_mean", []).append(float(np.mean(vals)) if vals else NAN)
            member_add.setdefault(f"msno_{stem}_std", []).append(
                float(np.std(vals, ddof=1)) if len(vals) > 1 else NAN
            )
        artists = {out.at[j, "artist_name"] for j in rows}
        member_add.setdefault("artist_msno_cnt", []).append(
            math.log1p(len(artists)) if rows or serving else NAN
        )
        for c in range(10):
            share = sum(1 for j in rows if out.at[j, "language"] == c) / len(rows) if rows else NAN
            member_add.setdefault(f"msno_language_{c}", []).append(share)
    return member_add


NEIGHBOUR_STEMS = (
    "song_code",
    "artist_name",
    "song_length",
    "language",
    "first_genre_id",
    "cc",
    "artist_song_cnt",
    "genre_song_cnt",
    "song_rec_cnt",
    "artist_rec_cnt",
    "genre_rec_cnt",
    "composer_song_cnt",
    "song_timestamp_mean",
    "song_timestamp_std",
    "source_type",
)


def _song_time_stats(out: pd.DataFrame, sids: list, idx: np.ndarray, ts: np.ndarray, serving: bool) -> None:
    n = len(sids)
    mean, std = [], []
    for i in range(n):
        rows = [j for j in range(n) if sids[j] == sids[i] and (idx[j] < idx[i] or not serving)]
        vals = ts[rows]
        mean.append(float(vals.mean()) if len(vals) else NAN)
        std.append(float(vals.std(ddof=1)) if len(vals) > 1 else NAN)
    out["song_timestamp_mean"], out["song_timestamp_std"] = mean, std


def _neighbour_columns(out: pd.DataFrame, ev: pd.DataFrame, serving: bool, reg: list, exp: list) -> dict:
    """Step 9: neighbours, flags, time."""
    idx = ev["idx"].to_numpy()
    users = ev["msno"].tolist()
    n = len(ev)
    n_train = int((ev["split"] == "train").sum())
    n_total = (
        n_train + round(n_train * KKBOX_TEST / KKBOX_TRAIN)
        if serving
        else int(ev["split"].isin(["train", "test"]).sum())
    )
    ts = np.array([timestamp(int(i), n_train, n_total) for i in idx])
    _song_time_stats(out, ev["song_id"].tolist(), idx, ts, serving)
    prev = _neighbour(users, idx, before=True)
    nxt = _neighbour(users, idx, before=False)
    extra: dict[str, object] = {}
    for side, pick in (("before", prev), ("after", nxt)):
        if serving and side == "after":
            continue
        for stem in NEIGHBOUR_STEMS:
            col = out[stem].to_numpy()
            extra[f"{side}_{stem}"] = np.array([col[pick(i)] for i in range(n)])
        extra[f"{side}_type_same"] = (extra[f"{side}_source_type"] == out["source_type"].to_numpy()).astype(
            float
        )
        extra[f"{side}_artist_same"] = (extra[f"{side}_artist_name"] == out["artist_name"].to_numpy()).astype(
            float
        )
    extra["time_spent"] = [NAN if _none(r) else int(t - r) for t, r in zip(ts, reg, strict=True)]
    extra["time_left"] = [NAN if _none(e) else int(e - t) for t, e in zip(ts, exp, strict=True)]
    return extra


def _value(song: dict, column: str) -> float:
    value = song["length"] if column == "song_length" else song[column]
    return NAN if _none(value) else float(value)


def _neighbour(users: list, idx: np.ndarray, before: bool) -> Callable[[int], int]:
    """Row position of the user's previous (next) event; the row itself when there is none."""
    order = np.argsort(idx, kind="stable")
    last: dict = {}
    result = {}
    seq = order if before else order[::-1]
    for i in seq:
        result[i] = last.get(users[i], i)
        last[users[i]] = i
    return lambda i: result[i]
