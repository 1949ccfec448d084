"""The config overrides the scale benchmarks share: a local session over all cores, a lake,
models and generated files under one root, and the generator's size."""

from __future__ import annotations

from pathlib import Path

# the generator at full KKBOX scale
FULL = {"users": 34_403, "songs": 419_839, "events": 9_934_208}


def scale_overrides(
    root: str, raw: str | None, size: dict[str, int], partitions: int, driver_memory: str
) -> list[str]:
    """``--set`` items: ``<root>/lakehouse``, ``<root>/models``, generated files in ``raw`` (None:
    ``<root>/raw``), ``size`` = users, songs, events."""
    base = Path(root).absolute()
    return [
        "spark.master=local[*]",
        f"spark.driver_memory={driver_memory}",
        f"spark.shuffle_partitions={partitions}",
        f"lake.root={base / 'lakehouse'}",
        f"models.root={base / 'models'}",
        f"data.raw_dir={Path(raw).absolute() if raw else base / 'raw'}",
        *[f"data.synthetic.{key}={size[key]}" for key in ("users", "songs", "events")],
    ]
