"""``relisten ingest``: the configured raw source into the bronze tables.

``data.source`` ``synthetic`` and ``kkbox`` read the KKBOX CSV files (:mod:`~relisten_spark.data.kkbox`),
``interactions`` a generic user-item log (:mod:`~relisten_spark.data.interactions`).
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession

from relisten_spark.config import Config
from relisten_spark.data import interactions, kkbox


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    """Ingest ``cfg.data.source``; the summary of the source's own ``run``."""
    if cfg.data.source == "interactions":
        return interactions.run(spark, cfg)
    return kkbox.run(spark, cfg)
