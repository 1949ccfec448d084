"""The listening context of each event: source_system_tab, source_screen_name and source_type."""

from __future__ import annotations

import numpy as np
import pandas as pd

from relisten_spark.data.synthetic.calibration import COMBOS
from relisten_spark.data.synthetic.sampling import CHUNK, draw_rows


def combo_tables() -> tuple[pd.DataFrame, np.ndarray]:
    """All (tab, screen, type) combinations with their logit offsets; per-tab draw probabilities.

    The table's columns: ``[tab_index, tab, screen, type, p, offset]`` (``p`` within its tab).
    """
    rows = []
    for t, (tab, combos) in enumerate(COMBOS.items()):
        total = sum(w for _, _, w, _ in combos)
        for screen, type_, w, off in combos:
            rows.append((t, tab, screen, type_, w / total, off))
    table = pd.DataFrame(rows, columns=["tab_index", "tab", "screen", "type", "p", "offset"])
    probs = np.zeros((len(COMBOS), len(table)))
    probs[table["tab_index"].to_numpy(), np.arange(len(table))] = table["p"].to_numpy()
    return table, probs


def draw_contexts(
    rng: np.random.Generator, user: np.ndarray, session: np.ndarray, tab_pref: np.ndarray
) -> tuple[np.ndarray, pd.DataFrame]:
    """A combo index per event: the session's context (75%) or a fresh draw from the user's mix.

    ``session`` is -1 for events outside a session; ``tab_pref`` holds each user's tab shares.
    Returns the combo indices and the combo table of :func:`combo_tables`.
    """
    table, probs = combo_tables()

    def draw(u: np.ndarray) -> np.ndarray:
        tab = np.empty(len(u), dtype=np.int64)
        for lo in range(0, len(u), CHUNK):
            uu = u[lo : lo + CHUNK]
            cum = np.cumsum(tab_pref[uu], axis=1)
            tab[lo : lo + CHUNK] = (cum < rng.random(len(uu))[:, None] * cum[:, -1:]).sum(axis=1)
        return draw_rows(rng, np.minimum(tab, len(COMBOS) - 1), probs)

    has_session = session >= 0
    session_user = np.zeros(int(session.max()) + 1, dtype=np.int64)
    session_user[session[has_session]] = user[has_session]
    session_combo = draw(session_user)
    fresh = draw(user)
    keep = has_session & (rng.random(len(user)) < 0.75)
    return np.where(keep, session_combo[np.maximum(session, 0)], fresh).astype(np.int16), table
