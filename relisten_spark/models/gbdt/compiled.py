"""Compiled LightGBM inference: a booster turned into machine code by lleaves (LLVM).

:func:`load_predictor` returns what scores rows of a LightGBM model: the compiled model
(:class:`CompiledPredictor`) or, when compiling is off (``scoring.compiled_gbdt: false``) or
fails, ``lightgbm.Booster.predict`` (:class:`BoosterPredictor`, one log line says why). Both
take a ``[rows, features]`` float64 matrix (NaN = missing) and return the probabilities
``Booster.predict`` returns (the compiled model applies the same sigmoid; a test holds them
within 1e-6).

The compiled object is built once per model and CPU: it is cached in ``cache_dir`` (the scoring
path uses ``<models.root>/lightgbm/.compiled/``, hidden from the registry, and train-gbdt
compiles the model of ``scoring.profile`` there for its holdout predictions) as ``<sha256 of the
model file, 16 hex>-<target>.o``, where ``<target>`` names the host CPU, its features and the
compiler versions (machine code is only valid there). The first worker to need it compiles it
under a file lock, into a staging file renamed into place, so concurrent workers never read half
a file and compile it once; the others load it (milliseconds). Cache each predictor per Python
worker with :data:`relisten_spark.runtime.MODELS`.

Compiling costs seconds per hundred trees. Inlining is off (:data:`COMPILE_OPTIONS`): on the
demo's 100-tree, 305-column model it tripled the compile time (18 s against 6 s) for 1.27x
faster predictions. bench/gbdt.py ``--part predict`` prints both predictors' rows/s.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from relisten_spark.models.gbdt.task import lightgbm_module
from relisten_spark.runtime import LIGHTGBM

log = logging.getLogger(__name__)

COMPILED_DIR = ".compiled"  # beside the versions of a model in the registry (hidden: not a version)
# lleaves' compile options (part of the cache key)
COMPILE_OPTIONS: dict[str, Any] = {"finline": False}


class Predictor(Protocol):
    """Scores a ``[rows, features]`` float64 matrix: the positive class probability per row."""

    @property
    def kind(self) -> str: ...

    def predict(self, x: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class BoosterPredictor:
    """``lightgbm.Booster.predict`` with ``threads`` threads (the fallback)."""

    booster: Any
    threads: int = 1
    kind: str = "booster"

    def predict(self, x: np.ndarray) -> np.ndarray:
        if not len(x):
            return np.empty(0, dtype=np.float64)
        return np.asarray(self.booster.predict(x, num_threads=self.threads), dtype=np.float64)


@dataclass(frozen=True)
class CompiledPredictor:
    """A model compiled by lleaves, run on ``threads`` threads."""

    model: Any
    threads: int = 1
    kind: str = "compiled"

    def predict(self, x: np.ndarray) -> np.ndarray:
        if not len(x):
            return np.empty(0, dtype=np.float64)
        matrix = np.ascontiguousarray(x, dtype=np.float64)
        return np.asarray(self.model.predict(matrix, n_jobs=self.threads), dtype=np.float64)


def compiled_dir(models_root: str | Path) -> Path:
    """The compiled objects' folder of the registry's LightGBM versions."""
    return Path(models_root) / LIGHTGBM / COMPILED_DIR


def file_digest(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def target_tag() -> str:
    """This host's compile target: CPU name and a digest of its features, the compiler versions
    and :data:`COMPILE_OPTIONS`."""
    from importlib.metadata import version

    import llvmlite.binding as llvm

    llvm.initialize()
    llvm.initialize_native_target()
    try:
        features = llvm.get_host_cpu_features().flatten()
    except RuntimeError:  # LLVM cannot always detect them
        features = ""
    stamp = f"{features}|lleaves {version('lleaves')}|llvmlite {version('llvmlite')}|{COMPILE_OPTIONS}"
    return f"{llvm.get_host_cpu_name()}-{hashlib.sha256(stamp.encode()).hexdigest()[:12]}"


def compiled_file(model_file: Path, cache_dir: Path) -> Path:
    """Where the compiled object of ``model_file`` for this host lives in ``cache_dir``."""
    return cache_dir / f"{file_digest(model_file)[:16]}-{target_tag()}.o"


@contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _compile_into(model: Any, target: Path) -> None:
    """Compile ``model`` and store its object at ``target`` (staged, then renamed)."""
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / target.name
        model.compile(cache=str(staged), **COMPILE_OPTIONS)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
        try:
            shutil.copyfile(staged, partial)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)


def compile_model(model_file: Path, cache_dir: Path) -> Any:
    """The lleaves model of ``model_file``, compiled for this host, from ``cache_dir`` when
    there (else compiled and stored there; module docstring)."""
    import lleaves

    cache_dir.mkdir(parents=True, exist_ok=True)
    target = compiled_file(model_file, cache_dir)
    model = lleaves.Model(model_file=str(model_file))
    with _locked(cache_dir / f".{target.name}.lock"):
        if target.is_file():
            model.compile(cache=str(target), **COMPILE_OPTIONS)
        else:
            log.info("compiling LightGBM model %s (%d trees) into %s", model_file, model.num_trees(), target)
            _compile_into(model, target)
    return model


def load_predictor(
    model_file: Path, cache_dir: Path, booster: Any, compiled: bool = True, threads: int = 1
) -> Predictor:
    """The compiled predictor of ``model_file`` (cached in ``cache_dir``), or ``booster`` (a
    ``lightgbm.Booster`` of the same file) when ``compiled`` is false or compiling fails."""
    if compiled:
        try:
            return CompiledPredictor(compile_model(model_file, cache_dir), threads)
        except Exception as exc:  # any failure of the optional compiler: score with the booster
            log.warning(
                "compiled LightGBM inference unavailable, using Booster.predict: %s: %s",
                type(exc).__name__,
                exc,
            )
    return BoosterPredictor(booster, threads)


def string_predictor(model: str, cache_dir: Path | None, threads: int = 1) -> Predictor:
    """:func:`load_predictor` for a model string (compiled from a temporary copy of it, so
    the cache key is the digest its ``model.txt`` will have); ``cache_dir`` None: the booster."""
    booster = lightgbm_module().Booster(model_str=model)
    if cache_dir is None:
        return BoosterPredictor(booster, threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.txt"
        path.write_text(model)
        return load_predictor(path, cache_dir, booster, compiled=True, threads=threads)
