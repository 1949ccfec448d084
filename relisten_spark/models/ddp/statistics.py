"""The nets' standardisation statistics over the ``fit`` rows, in one vectorised pass.

Per numeric input: the count, mean, sum of squared deviations and minimum of its present values
(NaN = missing), computed per partition with NumPy (``mapInArrow``) and merged on the driver
with Chan et al.'s pairwise update, and its fill value
(:class:`~relisten_spark.features.spec.Fill`, FEATURES.md step 7). A Spark aggregation with
thousands of buffer columns runs interpreted and took 400 s for 68k rows x 365 inputs here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from relisten_spark.features.spec import Fill
from relisten_spark.models.nets import Moments, NetInputs, Numeric

MOMENTS_SCHEMA = "n array<double>, mean array<double>, m2 array<double>, min array<double>"
# fill rules that take the mean over the distinct users / songs of the fit rows, and their key
ENTITY_FILLS = ((Fill.USER_MEAN, "msno"), (Fill.SONG_MEAN, "song_id"))

ColumnMoments = tuple[np.ndarray, ...]  # (n, mean, m2, min), one value per column


def column_moments(x: np.ndarray) -> ColumnMoments:
    """Per column of ``x`` (NaN = missing): count, mean, sum of squared deviations, minimum."""
    present = ~np.isnan(x)
    n = present.sum(axis=0).astype(np.float64)
    values = np.where(present, x, 0.0)
    mean = np.divide(values.sum(axis=0), n, out=np.zeros(x.shape[1]), where=n > 0)
    deviation = np.where(present, x - mean, 0.0)
    low = np.where(present, x, np.inf).min(axis=0, initial=np.inf)
    return n, mean, (deviation * deviation).sum(axis=0), low


def merge_moments(a: ColumnMoments, b: ColumnMoments) -> ColumnMoments:
    """Chan et al.'s pairwise update: the moments of the union of two row sets.

    >>> x = np.array([[1.0, np.nan], [2.0, 4.0], [4.0, 8.0], [np.nan, 1.0]])
    >>> n, mean, m2, low = merge_moments(column_moments(x[:2]), column_moments(x[2:]))
    >>> n.tolist(), mean.tolist(), (m2 / n).round(6).tolist(), low.tolist()
    ([3.0, 3.0], [2.333333333333333, 4.333333333333333], [1.555556, 8.222222], [1.0, 1.0])
    """
    na, ma, m2a, lowa = a
    nb, mb, m2b, lowb = b
    n = na + nb
    delta = mb - ma
    share = np.divide(nb, n, out=np.zeros_like(n), where=n > 0)
    mean = ma + delta * share
    m2 = m2a + m2b + delta * delta * na * share
    return n, mean, m2, np.minimum(lowa, lowb)


def _partition_moments(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow: one row of per-column moments for the whole partition."""
    total: ColumnMoments | None = None
    for batch in batches:
        x = np.column_stack(
            [c.to_numpy(zero_copy_only=False).astype(np.float64, copy=False) for c in batch.columns]
        ).reshape(batch.num_rows, batch.num_columns)
        part = column_moments(x)
        total = part if total is None else merge_moments(total, part)
    if total is not None:
        arrays = [pa.array([v.tolist()], pa.list_(pa.float64())) for v in total]
        yield pa.RecordBatch.from_arrays(arrays, names=["n", "mean", "m2", "min"])


def numeric_moments(fit: DataFrame, names: Sequence[str]) -> ColumnMoments:
    """The moments of columns ``names`` of ``fit``: one ``mapInArrow`` row per partition, merged."""
    total: ColumnMoments = (
        np.zeros(len(names)),
        np.zeros(len(names)),
        np.zeros(len(names)),
        np.full(len(names), np.inf),
    )
    if not names:
        return total
    columns = fit.select(*[F.col(c).cast("double").alias(f"c{j}") for j, c in enumerate(names)])
    for part in columns.mapInArrow(_partition_moments, MOMENTS_SCHEMA).collect():  # one row per partition
        total = merge_moments(total, tuple(np.array(part[k]) for k in part.__fields__))
    return total


def entity_means(fit: DataFrame, inputs: NetInputs) -> dict[str, float | None]:
    """``user_mean`` / ``song_mean`` fills: per column, the mean over the distinct users / songs
    of ``fit`` of their mean value (one grouped aggregation per rule, over its columns only)."""
    means: dict[str, float | None] = {}
    for rule, key in ENTITY_FILLS:
        cols = [c.name for c in inputs.numeric if c.fill == rule]
        if cols:
            value = {c: F.nanvl(F.col(c).cast("double"), F.lit(None).cast("double")) for c in cols}
            per_entity = fit.groupBy(key).agg(*[F.avg(v).alias(c) for c, v in value.items()])
            means.update(per_entity.agg(*[F.avg(c).alias(c) for c in cols]).collect()[0].asDict())
    return means


def _fill(column: Numeric, present: int, mean: float | None, low: float, means: dict[str, Any]) -> float:
    """The value a missing entry of ``column`` takes (0 when its rule has no value)."""
    by_rule = {Fill.MEAN: mean, Fill.ZERO: 0.0, Fill.USER_MIN: float(low) if present else None}
    fill = by_rule.get(column.fill, means.get(column.name))
    return fill if fill is not None else 0.0


def fit_statistics(df: DataFrame, inputs: NetInputs) -> tuple[dict[str, Moments], dict[str, int], float]:
    """The fit-row moments and fill value of every numeric input, the row counts (all, fit,
    calib) and the positive rate of the fit rows.

    ``df``: ``[msno, song_id, eval_split, target, <numeric>...]``; NaN counts as missing.
    """
    is_fit = F.col("eval_split") == "fit"
    row = df.agg(
        F.count(F.lit(1)).alias("all"),
        F.count(F.when(is_fit, 1)).alias("fit"),
        F.count(F.when(F.col("eval_split") == "calib", 1)).alias("calib"),
        F.avg(F.when(is_fit, F.col("target").cast("double"))).alias("positive_rate"),
    ).collect()[0]  # a global aggregation: one row
    fit = df.where(is_fit)
    n, mean, m2, low = numeric_moments(fit, inputs.numeric_names)
    means = entity_means(fit, inputs)
    fit_rows = int(row["fit"])
    moments = {}
    for j, c in enumerate(inputs.numeric):
        present = int(n[j])
        mu = float(mean[j]) if present else None
        var = float(m2[j] / present) if present else None
        moments[c.name] = Moments(fit_rows, present, mu, var, _fill(c, present, mu, low[j], means))
    counts = {"all": int(row["all"]), "fit": fit_rows, "calib": int(row["calib"])}
    return moments, counts, float(row["positive_rate"] or 0.0)
