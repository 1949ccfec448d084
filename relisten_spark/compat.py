"""The Spark and Python versions the engine supports, checked at start.

The wheel does not require ``pyspark``: a cluster (Databricks, YARN) brings its own Spark, and
installing the package must not replace it. ``pip install relisten_spark[local]`` adds the
pinned ``pyspark`` for local runs. So the supported range is declared here and checked when a
command starts (:func:`check_versions`), with one line naming what was found.
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import PackageNotFoundError, version

from relisten_spark.errors import RelistenError

# [lowest, highest) major.minor versions; the pinned `[local]` pyspark lies in the range
PYSPARK = ((4, 0), (4, 2))
PYTHON = ((3, 11), (3, 13))


class UnsupportedVersionError(RelistenError):
    """pyspark or Python is missing or outside the supported range."""


def _span(bounds: tuple[tuple[int, int], tuple[int, int]]) -> str:
    """``>=4.0,<4.2``.

    >>> _span(PYSPARK)
    '>=4.0,<4.2'
    """
    (lo_major, lo_minor), (hi_major, hi_minor) = bounds
    return f">={lo_major}.{lo_minor},<{hi_major}.{hi_minor}"


def major_minor(text: str) -> tuple[int, int] | None:
    """``(major, minor)`` of a version string (None when it has none).

    >>> major_minor("4.1.4"), major_minor("4.2.0.dev0"), major_minor("3.11.7"), major_minor("dev")
    ((4, 1), (4, 2), (3, 11), None)
    """
    match = re.match(r"(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _installed_pyspark() -> str | None:
    try:
        return version("pyspark")
    except PackageNotFoundError:
        try:  # a runtime whose Spark is on the path without pip metadata
            import pyspark
        except ImportError:
            return None
        return str(pyspark.__version__)


def check_versions(pyspark_version: str | None = "", python_version: str = "") -> None:
    """Raise :class:`UnsupportedVersionError` (one line) unless pyspark and Python are in range.

    ``pyspark_version`` / ``python_version`` default to what is installed and running (None:
    pyspark is not installed).
    """
    found = _installed_pyspark() if pyspark_version == "" else pyspark_version
    python = python_version or ".".join(map(str, sys.version_info[:3]))
    py = major_minor(python)
    if py is None or not PYTHON[0] <= py < PYTHON[1]:
        raise UnsupportedVersionError(
            f"relisten_spark supports Python {_span(PYTHON)}, found Python {python}"
        )
    if found is None:
        raise UnsupportedVersionError(
            f"pyspark is not installed: run on a Spark {_span(PYSPARK)} runtime or "
            "`pip install relisten_spark[local]`"
        )
    spark = major_minor(found)
    if spark is None or not PYSPARK[0] <= spark < PYSPARK[1]:
        raise UnsupportedVersionError(
            f"relisten_spark supports pyspark {_span(PYSPARK)}, found pyspark {found}: use a runtime "
            f"with Spark {_span(PYSPARK)} (or `pip install relisten_spark[local]` for the pinned one)"
        )
