"""The nets' holdout predictions: a saved net scores Arrow batches, loaded once per Python worker."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame

from relisten_spark import runtime
from relisten_spark.models import nets, shards

PREDICTION_COLUMNS = ("idx", "msno", "song_id", "eval_split", "target")
PREDICTION_SCHEMA = "idx long, msno string, song_id string, eval_split string, target int, score double"


def _load(folder: str) -> nets.RelistenNet:
    import torch

    torch.set_num_threads(1)  # one Spark task = one core
    return nets.load(folder)


def score_frame(df: DataFrame, model_dir: str, inputs: nets.NetInputs) -> DataFrame:
    """Score ``df`` ``[idx, msno, song_id, eval_split, target, <inputs>]`` with a saved net.

    Returns ``[idx, msno, song_id, eval_split, target, score]`` (score = probability). The net
    is loaded once per Python worker (:data:`relisten_spark.runtime.MODELS`, keyed by its folder).
    """
    cats, nums = inputs.categorical_names, inputs.numeric_names

    def score(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        model = runtime.MODELS.get(("net", model_dir), lambda: _load(model_dir))
        for batch in batches:
            cat, num = shards.to_arrays(batch, cats, nums)
            probs = nets.predict(model, cat, num) if batch.num_rows else np.zeros(0)
            yield pa.RecordBatch.from_arrays(
                [*(batch.column(c) for c in PREDICTION_COLUMNS), pa.array(probs)],
                names=[*PREDICTION_COLUMNS, "score"],
            )

    return df.mapInArrow(score, PREDICTION_SCHEMA)
