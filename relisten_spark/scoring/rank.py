"""The ensemble at scoring time: load the models once per Python worker, score, rank, explain.

:func:`load_ensemble` reads the latest stack from the registry and the exact base-model
versions its weights were fit on (LightGBM's ``model.txt`` and ``metadata.json['features']``;
the nets' folders). :func:`score_and_rank` runs one ``mapInArrow`` over the candidate pairs'
features, partitioned by user and sorted by user inside each partition, so a task sees all the
candidates of a user together. The task:

1. gathers Arrow batches (``scoring.batch_size`` rows, the Arrow batch size of the stage) up to
   a user boundary;
2. computes each base model's logit (LightGBM ``raw_score``, the nets' probabilities turned into
   logits with the clipping gold.predictions uses) and the stack's probability
   ``sigmoid(b + sum_m w_m * logit_m)``;
3. ranks per (surface, user): scores descending, ``song_id`` ascending as the tie-break; the
   artist cap first (the k-th song of an artist in that order is dropped when k > cap), then
   ranks 1..N of the survivors;
4. explains only the rows it keeps: the LightGBM contributions of those rows
   (``scoring.reasons``: path contributions, :mod:`~relisten_spark.scoring.attribution`, or
   TreeSHAP), summed per feature family into readable reasons, the three largest as
   ``reasons`` ``[{code, text, weight}]`` (:func:`~relisten_spark.scoring.attribution.family_reasons`).

Ranking inside the task rather than with a window after it is what lets step 4 see the
features: contributions can cost far more than a prediction (TreeSHAP: 465 us against 5.5 us
per row on the full-scale 100-tree model; path contributions 8.9 us), so they are computed for the N
kept rows per user, not for the K candidates, and the candidates' feature
rows never have to be stored or recomputed. The order is the one of
``row_number() over (partition by surface, msno order by score desc, song_id)`` after the cap
filter ``row_number() over (partition by surface, msno, artist ...) <= cap`` (a test checks it
against those windows).

Models are cached in the per-worker model cache (:data:`relisten_spark.runtime.MODELS`) keyed by
(name, version): with Python worker reuse on (Spark's default) each worker loads a version once,
whatever the number of tasks and batches.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark import Accumulator
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import DoubleType, StructField, StructType

from relisten_spark import runtime
from relisten_spark.errors import InputError
from relisten_spark.models import registry
from relisten_spark.models.base_models import load_base_model
from relisten_spark.models.gbdt.compiled import COMPILED_DIR, Predictor, load_predictor
from relisten_spark.runtime import LIGHTGBM, LIGHTGBM_MODEL_FILE, LOGIT_EPS, NET_NAMES, STACK, spark_conf
from relisten_spark.scoring import attribution
from relisten_spark.scoring.levers import Levers, greedy_positions

log = logging.getLogger(__name__)

REASONS = 3
KEYS = ("surface", "msno", "song_id", "artist_key")
RANKED_SCHEMA = (
    "surface string, msno string, rank int, song_id string, score double, "
    "reasons array<struct<code: string, text: string, weight: double>>"
)
_RANKED_ARROW = pa.schema(
    [
        ("surface", pa.string()),
        ("msno", pa.string()),
        ("rank", pa.int32()),
        ("song_id", pa.string()),
        ("score", pa.float64()),
        ("reasons", attribution.REASONS_TYPE),
    ]
)


@dataclass(frozen=True)
class ModelRef:
    """One registry version: ``name`` (lightgbm | jenn | felu_net), ``version``, its ``folder``."""

    name: str
    version: str
    folder: str


@dataclass(frozen=True)
class Ensemble:
    """What the scoring tasks need: the stack's weights and the base models it combines."""

    stack_version: str
    profile: str
    weights: dict[str, float]
    intercept: float
    models: tuple[ModelRef, ...]
    lgb_features: tuple[str, ...]
    net_inputs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    reasons: str = "path"  # "path" contributions (attribution.py) or LightGBM's TreeSHAP "shap"
    compiled_gbdt: bool = True  # LightGBM scored compiled (models/gbdt/compiled.py), else Booster.predict

    @property
    def versions(self) -> dict[str, str]:
        """{model: version} of every model used, the stack included."""
        return {**{m.name: m.version for m in self.models}, STACK: self.stack_version}

    @property
    def columns(self) -> list[str]:
        """Feature columns any of the models reads, in a stable order."""
        names = list(self.lgb_features)
        for inputs in self.net_inputs.values():
            names += [c for c in inputs if c not in names]
        return names


@dataclass(frozen=True)
class SurfaceRule:
    """Ranking rule of one surface: ``top_n`` rows, at most ``max_per_artist`` per artist, and
    its product levers (:mod:`~relisten_spark.scoring.levers`; the defaults change nothing)."""

    top_n: int
    max_per_artist: int | None
    levers: Levers = field(default_factory=Levers)


def lever_columns(rules: Mapping[str, SurfaceRule]) -> list[str]:
    """The feature columns the surfaces' levers read, in a stable order."""
    return list(dict.fromkeys(c for r in rules.values() for c in r.levers.columns()))


def load_ensemble(
    models_root: str, profile: str, reasons: str = "path", compiled_gbdt: bool = True
) -> Ensemble:
    """The latest stack of ``profile`` and the base-model versions it was fit on; ``reasons``
    the contributions the reasons come from (``scoring.reasons``); ``compiled_gbdt`` whether
    LightGBM scores compiled (``scoring.compiled_gbdt``).

    Raises :class:`InputError` when no stack is trained on ``profile``, when a base version is
    gone from the registry, or when the stack has no LightGBM (the reasons come from LightGBM).
    """
    meta = latest_stack(models_root, profile)
    bases: dict[str, str] = meta["base_models"]
    if LIGHTGBM not in bases:
        raise InputError(f"the stack {meta['version']} has no lightgbm base model: the reasons need LightGBM")
    refs = tuple(
        ModelRef(name, version, str(registry.resolve(models_root, name, version).absolute()))
        for name, version in bases.items()
    )
    lgb_dir = next(Path(r.folder) for r in refs if r.name == LIGHTGBM)
    features = registry.load_metadata(lgb_dir).get("features")
    if not features:
        raise InputError(f"{lgb_dir}/metadata.json has no 'features' list")
    net_inputs = {r.name: _net_columns(Path(r.folder)) for r in refs if r.name in NET_NAMES}
    return Ensemble(
        stack_version=str(meta["version"]),
        profile=profile,
        weights={k: float(v) for k, v in meta["weights"].items()},
        intercept=float(meta["intercept"]),
        models=refs,
        lgb_features=tuple(features),
        net_inputs=net_inputs,
        reasons=reasons,
        compiled_gbdt=compiled_gbdt,
    )


def latest_stack(models_root: str, profile: str) -> dict[str, Any]:
    """The metadata of the newest stack version fit on ``profile`` (a pipeline trains one stack
    per profile, so the newest version overall may belong to another)."""
    newest = registry.resolve(models_root, STACK)  # raises when no stack is trained
    versions = sorted(
        (
            p
            for p in newest.parent.iterdir()
            if (p / registry.METADATA).is_file() and not p.name.startswith(".")
        ),
        key=lambda p: p.name,
        reverse=True,
    )
    for folder in versions:
        meta = registry.load_metadata(folder)
        if meta.get("profile") == profile:
            return meta
    raise InputError(
        f"no stack under {models_root} was trained on profile '{profile}' (scoring.profile): "
        f"run train-stack with --set stack.profile={profile}"
    )


def _net_columns(folder: Path) -> tuple[str, ...]:
    """The input columns of a saved net (its spec file), read without loading the weights."""
    from relisten_spark.models import nets

    spec = json.loads((folder / nets.SPEC_FILE).read_text())
    inputs = nets.NetInputs.from_dict(spec["inputs"])
    return tuple(inputs.categorical_names + inputs.numeric_names)


# ---- the per-worker model cache ------------------------------------------------------------
def _cached(ref: ModelRef) -> Any:
    """The loaded model of ``ref``; each (name, version) is loaded once per Python worker."""
    return runtime.MODELS.get((ref.name, ref.version), lambda: _load(ref))


def _load(ref: ModelRef) -> Any:
    log.info("loading %s %s in this worker", ref.name, ref.version)
    if ref.name != LIGHTGBM:
        import torch

        torch.set_num_threads(1)  # one Spark task = one core
    return load_base_model(ref.name, ref.folder)


def _paths(ref: ModelRef) -> attribution.PathContributions:
    """The path contributions table of a LightGBM version, built once per Python worker."""
    return runtime.MODELS.get(
        (f"{ref.name}:paths", ref.version), lambda: attribution.path_contributions(_cached(ref))
    )


def _lgb_predictor(ref: ModelRef, compiled: bool) -> Predictor:
    """LightGBM's predictor of ``ref`` (compiled, :mod:`~relisten_spark.models.gbdt.compiled`,
    unless ``compiled`` is false), built once per Python worker."""
    folder = Path(ref.folder)
    return runtime.MODELS.get(
        (f"{ref.name}:predictor", ref.version, compiled),
        lambda: load_predictor(
            folder / LIGHTGBM_MODEL_FILE, folder.parent / COMPILED_DIR, _cached(ref), compiled
        ),
    )


def _logit_from_probability(p: np.ndarray) -> np.ndarray:
    clipped = np.clip(p, LOGIT_EPS, 1 - LOGIT_EPS)
    return np.log(clipped / (1 - clipped))


def _lgb_matrix(table: pa.Table, features: Sequence[str]) -> np.ndarray:
    """``[rows, features]`` float64, nulls as NaN (LightGBM's missing value)."""
    out = np.empty((table.num_rows, len(features)), dtype=np.float64)
    for j, name in enumerate(features):
        out[:, j] = pc.cast(table.column(name), pa.float64()).to_numpy(zero_copy_only=False)
    return out


def base_logits(ens: Ensemble, table: pa.Table, lgb_x: np.ndarray) -> dict[str, np.ndarray]:
    """Each base model's logit for the rows of ``table`` (``lgb_x``: LightGBM's matrix of them)."""
    out: dict[str, np.ndarray] = {}
    for ref in ens.models:
        if ref.name == LIGHTGBM:
            prob = _lgb_predictor(ref, ens.compiled_gbdt).predict(lgb_x)
        else:
            model = _cached(ref)
            from relisten_spark.models import nets, shards

            cat, num = shards.to_arrays(table, model.inputs.categorical_names, model.inputs.numeric_names)
            prob = nets.predict(model, cat, num)
        out[ref.name] = _logit_from_probability(np.asarray(prob, dtype=np.float64))
    return out


def stack_probability(ens: Ensemble, logits: Mapping[str, np.ndarray]) -> np.ndarray:
    """``sigmoid(intercept + sum_m w_m * logit_m)``."""
    z = np.full(len(next(iter(logits.values()))), ens.intercept, dtype=np.float64)
    for name, w in ens.weights.items():
        z += w * logits[name]
    return 1.0 / (1.0 + np.exp(-z))


def top_n_positions(frame: pd.DataFrame, rules: Mapping[str, SurfaceRule]) -> pd.DataFrame:
    """The kept rows of ``frame`` ``[surface, msno, song_id, artist_key, score]`` and their rank.

    Per (surface, msno), in the order score descending then song_id ascending: a row whose
    artist already has ``max_per_artist`` earlier rows is dropped, then the first ``top_n`` of
    the rest are kept. Returns ``[pos, rank]`` (``pos`` the row position in ``frame``), ordered
    by surface, msno, rank.
    """
    unknown = set(frame["surface"].unique()) - set(rules)
    if unknown:
        raise ValueError(f"rows of surfaces without a ranking rule: {sorted(unknown)}")
    tuned = [s for s, r in rules.items() if r.levers.active]
    if tuned:
        return _with_levers(frame, rules, tuned)
    ordered = frame.assign(pos=np.arange(len(frame))).sort_values(
        ["surface", "msno", "score", "song_id"], ascending=[True, True, False, True], kind="stable"
    )
    caps = ordered["surface"].map({s: r.max_per_artist or math.inf for s, r in rules.items()})
    artist_seen = ordered.groupby(["surface", "msno", "artist_key"], sort=False).cumcount() + 1
    capped = ordered[artist_seen.to_numpy() <= caps.to_numpy()]
    rank = capped.groupby(["surface", "msno"], sort=False).cumcount() + 1
    limit = capped["surface"].map({s: r.top_n for s, r in rules.items()})
    kept = capped.assign(rank=rank.to_numpy())[rank.to_numpy() <= limit.to_numpy()]
    return kept[["pos", "rank"]].reset_index(drop=True)


def _with_levers(frame: pd.DataFrame, rules: Mapping[str, SurfaceRule], tuned: list[str]) -> pd.DataFrame:
    """:func:`top_n_positions` when the surfaces ``tuned`` have active levers: those surfaces
    through :func:`~relisten_spark.scoring.levers.greedy_positions`, the others the plain way."""
    surface = frame["surface"].to_numpy()
    plain_rules = {s: r for s, r in rules.items() if s not in tuned}
    parts = []
    for name in [None, *tuned]:
        rows = np.flatnonzero(~np.isin(surface, tuned) if name is None else surface == name)
        part = frame.iloc[rows].reset_index(drop=True)
        if name is None:
            kept = top_n_positions(part, plain_rules)
        else:
            rule = rules[name]
            kept = greedy_positions(part, rule.top_n, rule.max_per_artist, rule.levers)
        parts.append(kept.assign(pos=rows[kept["pos"].to_numpy()]))
    out = pd.concat(parts, ignore_index=True)
    pos = out["pos"].to_numpy()
    out = out.assign(_s=surface[pos], _u=frame["msno"].to_numpy()[pos])
    return out.sort_values(["_s", "_u", "rank"], kind="stable")[["pos", "rank"]].reset_index(drop=True)


def reasons(
    booster: Any,
    x: np.ndarray,
    features: Sequence[str],
    k: int = REASONS,
    paths: attribution.PathContributions | None = None,
) -> pa.Array:
    """The ``k`` reasons of each row of ``x`` (``list<struct<code, text, weight>>``,
    :func:`~relisten_spark.scoring.attribution.family_reasons`) from its LightGBM contributions:
    path contributions from ``paths``, LightGBM's TreeSHAP when ``paths`` is None."""
    if x.shape[0] == 0:
        return pa.array([], attribution.REASONS_TYPE)
    if paths is None:
        contrib = np.asarray(booster.predict(x, pred_contrib=True, num_threads=1))[:, : len(features)]
    else:
        contrib = paths.of(booster, x)[:, : len(features)]
    return attribution.family_reasons(contrib, features, k)


def _rank_chunk(
    ens: Ensemble, rules: Mapping[str, SurfaceRule], table: pa.Table, timer: Accumulator | None
) -> pa.RecordBatch:
    started = time.perf_counter()
    lgb_x = _lgb_matrix(table, ens.lgb_features)
    score = stack_probability(ens, base_logits(ens, table, lgb_x))
    columns = (*KEYS, *lever_columns(rules))
    frame = pd.DataFrame({k: table.column(k).to_numpy(zero_copy_only=False) for k in columns})
    frame["score"] = score
    kept = top_n_positions(frame, rules)
    pos = kept["pos"].to_numpy()
    ref = next(r for r in ens.models if r.name == LIGHTGBM)
    booster = _cached(ref)
    why = reasons(booster, lgb_x[pos], ens.lgb_features, paths=_paths(ref) if ens.reasons == "path" else None)
    if timer is not None:
        timer.add(time.perf_counter() - started)
    take = pa.array(pos, pa.int64())
    return pa.RecordBatch.from_arrays(
        [
            table.column("surface").take(take).combine_chunks(),
            table.column("msno").take(take).combine_chunks(),
            pa.array(kept["rank"].to_numpy(dtype=np.int32)),
            table.column("song_id").take(take).combine_chunks(),
            pa.array(score[pos]),
            why,
        ],
        schema=_RANKED_ARROW,
    )


def _rank_fn(
    ens: Ensemble, rules: Mapping[str, SurfaceRule], batch_size: int, timer: Accumulator | None
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The task side of :func:`score_and_rank` (rows arrive sorted by msno)."""

    def rank(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        pending: list[pa.RecordBatch] = []
        rows = 0
        schema = None
        for batch in batches:
            schema = batch.schema
            pending.append(batch)
            rows += batch.num_rows
            if rows < batch_size:
                continue
            table = pa.Table.from_batches(pending, schema)
            users = table.column("msno")
            cut = pc.index(users, users[-1]).as_py()  # first row of the last (maybe partial) user
            if cut <= 0:
                continue  # one user so far: keep gathering
            yield _rank_chunk(ens, rules, table.slice(0, cut), timer)
            rest = table.slice(cut)
            pending, rows = rest.to_batches(), rest.num_rows
        if rows and schema is not None:
            yield _rank_chunk(ens, rules, pa.Table.from_batches(pending, schema), timer)

    return rank


def cluster_by_user(pairs: DataFrame) -> DataFrame:
    """``pairs`` hash-partitioned by ``msno`` and sorted by it inside each partition: every
    candidate of a user in one task, users one after the other (what :func:`score_and_rank`
    reads). Apply it last, right before :func:`score_and_rank` (the optimizer drops a local
    sort that a join follows). Nothing is materialised: a task recomputed after an executor
    is lost gets the same users. To shuffle only narrow rows, ``repartition("msno")`` them
    before broadcast joins widen them; the planner then drops this repartition (the rows are
    hash-partitioned by ``msno`` already) and only the local sort remains."""
    return pairs.repartition("msno").sortWithinPartitions("msno")


def arrow_batch_size(spark: SparkSession, rows: int) -> AbstractContextManager[None]:
    """Run the enclosed actions with Arrow batches of ``rows`` rows for Python tasks."""
    return spark_conf(spark, {"spark.sql.execution.arrow.maxRecordsPerBatch": str(rows)})


def score_and_rank(
    pairs: DataFrame,
    ens: Ensemble,
    rules: Mapping[str, SurfaceRule],
    batch_size: int,
    timer: Accumulator | None = None,
) -> DataFrame:
    """Top-N per (surface, user) with scores and reasons.

    ``pairs``: ``[surface, msno, song_id, artist_key, <every column of ens.columns>]``, one row
    per candidate of a surface, clustered by user (:func:`cluster_by_user`; cluster the narrow
    pairs before their feature columns are added, so that the wide rows are never shuffled).
    Returns ``[surface, msno, rank int, song_id, score double, reasons array<struct>]`` (rules
    in the module docstring). ``timer`` (a float accumulator) receives the seconds the tasks
    spent in model code. Run the action inside :func:`arrow_batch_size` to fix the batch size.
    """
    extra = [c for c in lever_columns(rules) if c not in ens.columns]
    missing = [c for c in (*KEYS, *ens.columns, *extra) if c not in pairs.columns]
    if missing:
        raise InputError(f"the scoring features lack columns the models or levers need: {missing[:5]}")
    prepared = pairs.select(*KEYS, *ens.columns, *extra)
    return prepared.mapInArrow(_rank_fn(ens, rules, batch_size, timer), RANKED_SCHEMA)


def _score_fn(
    ens: Ensemble, keep: Sequence[str]
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The task side of :func:`score_pairs`."""

    def score(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if not batch.num_rows:
                continue
            table = pa.Table.from_batches([batch])
            lgb_x = _lgb_matrix(table, ens.lgb_features)
            probability = stack_probability(ens, base_logits(ens, table, lgb_x))
            columns = [table.column(c).combine_chunks() for c in keep]
            yield pa.RecordBatch.from_arrays(
                [*columns, pa.array(probability, pa.float64())], [*keep, "score"]
            )

    return score


def score_pairs(pairs: DataFrame, ens: Ensemble, keep: Sequence[str]) -> DataFrame:
    """The stack's probability of every candidate, unranked: ``[<keep>, score double]``.

    ``pairs``: ``[<keep>, <every column of ens.columns>]``. The backtest scores its candidates
    once with it and applies several lever settings to the scores
    (:func:`~relisten_spark.scoring.levers.greedy_positions`).
    """
    missing = [c for c in (*keep, *ens.columns) if c not in pairs.columns]
    if missing:
        raise InputError(f"the scoring features lack columns the models need: {missing[:5]}")
    prepared = pairs.select(*keep, *[c for c in ens.columns if c not in keep])
    schema = StructType([*[prepared.schema[c] for c in keep], StructField("score", DoubleType())])
    return prepared.mapInArrow(_score_fn(ens, keep), schema)
