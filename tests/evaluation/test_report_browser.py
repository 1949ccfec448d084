"""The rendered report in a real browser: headless Chromium runs the embedded plotly.js offline
and draws every figure (the DOM it builds), and the screenshot is not blank.

``make report-check`` runs it on a given report (``REPORT_CHECK_PAGE``) and keeps the
screenshot (``REPORT_CHECK_SCREENSHOT``); by default it renders a small report from made-up
frames.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from relisten_spark import schemas
from relisten_spark.evaluation import report, uncertainty

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = [
    pytest.mark.slow,  # two browser runs of a 5 MB page: 10-30 s
    pytest.mark.skipif(
        CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)"
    ),
]

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=10000",
)
AUC = {"popularity": 0.61, "lightgbm": 0.78, "jenn": 0.80, "stack": 0.815}


def _made_up_report(path: Path) -> None:
    """A report with every kind of figure, from small made-up frames (no Spark)."""
    keys = {"profile": "serving", "split_mode": "time"}
    metrics = pd.DataFrame(
        [("r", m, "serving", "eval", "roc_auc", a, "time") for m, a in AUC.items()],
        columns=schemas.METRICS.fieldNames(),
    )
    t = np.linspace(0, 1, 20)
    roc = pd.concat([pd.DataFrame({**keys, "model": m, "threshold": 1 - t, "fpr": t, "tpr": t ** (1 - a)})
                     for m, a in AUC.items()])  # fmt: skip
    calib = pd.concat([pd.DataFrame({**keys, "model": m, "mean_score": t, "positive_rate": a * t})
                       for m, a in AUC.items()])  # fmt: skip
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    sample = pd.DataFrame({"target": y, **{m: 2 * a * y + rng.normal(size=500) for m, a in AUC.items()}})
    gain = pd.DataFrame(
        {
            "feature": ["a", "b"],
            "label": ["you often play this artist", "listeners like you play it"],
            "gain": [3.0, 1.0],
        }
    )
    perm = pd.DataFrame(
        [(m, "popular in the last days", 0.01) for m in AUC], columns=["model", "label", "drop"]
    )
    extras = report.Extras(
        roc=roc,
        calib=calib,
        intervals={("serving", "time"): uncertainty.bootstrap_auc(sample, list(AUC), "jenn")},
        gain={"serving (lightgbm v1)": gain},
        permutation={"serving": perm},
    )
    path.write_text(report.render(metrics, extras, "report check"), encoding="utf-8")


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"  # a new empty profile each run
    profile.mkdir()
    cmd = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)


def test_report_draws_its_figures_in_headless_chromium(tmp_path: Path) -> None:
    given = os.environ.get("REPORT_CHECK_PAGE")
    page = Path(given) if given else tmp_path / "report.html"
    if not given:
        _made_up_report(page)
    figures = page.read_text(encoding="utf-8").count('class="plotly-graph-div"')
    assert figures > 0, f"{page} has no plotly figure: an older report? rerun `relisten evaluate`"

    dom = _chromium(tmp_path, "--dump-dom", page.resolve().as_uri()).stdout
    assert dom.count('class="plot-container plotly"') == figures  # plotly.js ran and drew each one
    assert dom.count('class="main-svg"') >= 2 * figures

    shot = Path(os.environ.get("REPORT_CHECK_SCREENSHOT") or tmp_path / "report.png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    _chromium(tmp_path, "--window-size=1280,2400", f"--screenshot={shot.resolve()}", page.resolve().as_uri())
    image = pytest.importorskip("PIL.Image").open(shot).convert("RGB")
    pixels = np.asarray(image)
    assert pixels.shape[:2] == (2400, 1280)
    assert (pixels < 240).any(axis=2).mean() > 0.02  # lines, bars, text: not a blank page
    assert len(np.unique(pixels[::4, ::4].reshape(-1, 3), axis=0)) > 50  # the figures' colours
