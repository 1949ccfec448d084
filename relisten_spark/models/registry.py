"""The model registry: ``<models.root>/<name>/<version>/`` with model files and metadata.json.

A version is written into a hidden staging folder and renamed into place only when complete,
so ``latest`` never resolves to a half-written version, and versions never overwrite each other.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from relisten_spark.errors import InputError

METADATA = "metadata.json"


def _versions(models_root: str | Path, name: str) -> list[str]:
    folder = Path(models_root) / name
    if not folder.is_dir():
        return []
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / METADATA).is_file()
    )


def save_model(
    models_root: str | Path,
    name: str,
    write_fn: Callable[[Path], None],
    metadata: dict[str, Any],
) -> str:
    """Create a new version of model ``name``; return the version string.

    ``write_fn(folder)`` writes the model files into ``folder``; ``metadata`` (JSON-able) is
    saved as metadata.json with ``name``, ``version`` and ``created_at`` added.
    """
    base = Path(models_root) / name
    base.mkdir(parents=True, exist_ok=True)
    version = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    staging = base / f".staging-{version}-{uuid.uuid4().hex[:6]}"
    staging.mkdir()
    try:
        write_fn(staging)
        meta = {**metadata, "name": name, "version": version, "created_at": datetime.now(UTC).isoformat()}
        (staging / METADATA).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        final = base / version
        while final.exists():  # two saves in the same microsecond: never overwrite
            version = f"{version}-{uuid.uuid4().hex[:4]}"
            final = base / version
            meta["version"] = version
            (staging / METADATA).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return version


def resolve(
    models_root: str | Path, name: str, version: str = "latest", where: Mapping[str, Any] | None = None
) -> Path:
    """The folder of ``name``'s ``version`` (``latest`` = newest complete version).

    ``where`` keeps only versions whose metadata.json has those values (e.g.
    ``{"profile": "serving"}``), so ``latest`` is the newest complete version that matches.
    """
    versions = _versions(models_root, name)
    if where:
        versions = [
            v
            for v in versions
            if all(load_metadata(Path(models_root) / name / v).get(k) == val for k, val in where.items())
        ]
    wanted = f"'{name}'" + (f" with {dict(where)}" if where else "")
    if not versions:
        raise InputError(f"no trained model {wanted} under {models_root} (train it first)")
    if version == "latest":
        return Path(models_root) / name / versions[-1]
    if version not in versions:
        raise InputError(f"model {wanted} has no version {version} under {models_root}")
    return Path(models_root) / name / version


def load_metadata(folder: str | Path) -> dict[str, Any]:
    """The metadata.json of a model version folder."""
    return json.loads((Path(folder) / METADATA).read_text())
