"""members.csv rows of the synthetic KKBOX data (CALIBRATION 1)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from relisten_spark.data.synthetic.calibration import (
    AGE_BINS,
    BD_ZERO_GIVEN_GENDER,
    CITY,
    EXP_2017_MONTH,
    EXP_YEARS,
    GENDER,
    INVALID_BD,
    INVALID_BD_SHARE_OF_NONZERO,
    REG_YEARS,
    REGISTERED_VIA,
)
from relisten_spark.data.synthetic.sampling import draw_keys


def draw_members(rng: np.random.Generator, msno: np.ndarray) -> pd.DataFrame:
    """One member per id, in the order of ``msno``.

    Columns, in the file's order: ``[msno, city, bd, gender, registered_via,
    registration_init_time, expiration_date]`` (dates as yyyymmdd integers).
    """
    n = len(msno)
    gender = draw_keys(rng, GENDER, n)
    bd = _ages(rng, gender)
    reg = _dates(
        rng,
        draw_keys(rng, REG_YEARS, n).astype(np.int64),
        first={2004: "2004-03-26"},
        last={2017: "2017-02-28"},
    )
    exp_int = _yyyymmdd(_expiration(rng, reg))
    exp_int[rng.integers(0, n)] = 19700101  # KKBOX's one epoch placeholder
    reg_int = _yyyymmdd(reg)
    return pd.DataFrame(
        {
            "msno": msno,
            "city": draw_keys(rng, CITY, n).astype(np.int64),
            "bd": bd,
            "gender": gender,
            "registered_via": draw_keys(rng, REGISTERED_VIA, n).astype(np.int64),
            "registration_init_time": reg_int,
            "expiration_date": exp_int,
        }
    )


def _ages(rng: np.random.Generator, gender: np.ndarray) -> np.ndarray:
    """The ``bd`` (age) column: 0 mostly where gender is empty, else an age; a few invalid ages."""
    n = len(gender)
    bd_zero = rng.random(n) < pd.Series(gender).map(BD_ZERO_GIVEN_GENDER).to_numpy(dtype=np.float64)
    bins = np.array(AGE_BINS, dtype=np.int64)
    b = rng.choice(len(bins), size=n, p=bins[:, 2] / bins[:, 2].sum())
    bd = bins[b, 0] + np.floor(rng.random(n) * (bins[b, 1] - bins[b, 0])).astype(np.int64)
    invalid = ~bd_zero & (rng.random(n) < INVALID_BD_SHARE_OF_NONZERO)
    bd[invalid] = draw_keys(rng, INVALID_BD, int(invalid.sum())).astype(np.int64)
    bd[bd_zero] = 0
    return bd


def _expiration(rng: np.random.Generator, reg: np.ndarray) -> np.ndarray:
    """Expiration dates: calibrated years, 2017 by month, never before the registration."""
    n = len(reg)
    exp_year = draw_keys(rng, EXP_YEARS, n).astype(np.int64)
    exp = _dates(rng, exp_year, last={2020: "2020-10-17"})
    in_2017 = np.flatnonzero(exp_year == 2017)
    month = rng.choice(12, size=len(in_2017), p=np.array(EXP_2017_MONTH) / sum(EXP_2017_MONTH))
    month_start = np.array(
        [np.datetime64(f"2017-{m + 1:02d}-01") for m in range(12)] + [np.datetime64("2018-01-01")]
    )
    span = (month_start[month + 1] - month_start[month]).astype(np.int64)
    exp[in_2017] = month_start[month] + np.floor(rng.random(len(in_2017)) * span).astype("timedelta64[D]")
    early = exp < reg  # a membership that ends before it starts: a short one instead
    gap = rng.choice(np.array([0, 0, 1, 2, 3, 7, 14, 30]), size=int(early.sum()))
    exp[early] = reg[early] + gap.astype("timedelta64[D]")
    return exp


def _dates(
    rng: np.random.Generator,
    year: np.ndarray,
    first: dict[int, str] | None = None,
    last: dict[int, str] | None = None,
) -> np.ndarray:
    """A uniform day within each element's year (optionally clipped per year)."""
    first, last = first or {}, last or {}
    years = np.unique(year)
    lo = np.array([np.datetime64(first.get(int(y), f"{y}-01-01")) for y in years])
    hi = np.array([np.datetime64(last.get(int(y), f"{y}-12-31")) for y in years])
    k = np.searchsorted(years, year)
    days = (hi[k] - lo[k]).astype(np.int64) + 1
    return lo[k] + np.floor(rng.random(len(year)) * days).astype("timedelta64[D]")


def _yyyymmdd(days: np.ndarray) -> np.ndarray:
    ts = pd.DatetimeIndex(days)
    return (ts.year * 10000 + ts.month * 100 + ts.day).to_numpy(dtype=np.int64)
