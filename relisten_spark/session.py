"""The one SparkSession factory.

Local masters get settings sized for a small machine; anything else (a cluster reached by
``spark-submit``, a Databricks notebook) takes the session that already exists.
"""

from __future__ import annotations

import logging
import os
import sys

from pyspark.sql import SparkSession

from relisten_spark.config import SparkConfig

log = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"

# PySpark's DataFrame debugging (on by default since 4.0) captures the Python call site of every
# Column and DataFrame call and hands it to the JVM: about five py4j round trips per call, so
# `F.col(c).cast(t).alias(c)` took 4.7 ms instead of about 1 ms, and a 400-column select 1.6 s
# instead of 0.4 s (local[2]). Without it a Spark analysis error lacks the Python line in its
# query context; set it back to "true" in spark.conf to debug one. PySpark reads it once, at its
# first call.
DATAFRAME_DEBUGGING = "spark.python.sql.dataFrameDebugging.enabled"

# Settings every session gets: UTC clock (Delta timestamps stay timezone-aware UTC),
# Parquet timestamps as INT64 micros (readable by every Delta reader), Arrow on,
# DataFrame debugging off.
_ALWAYS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    DATAFRAME_DEBUGGING: "false",
}


# Let the JIT compile methods over 8,000 bytecodes. Spark's generated code for a wide projection
# (the features' many columns, the SVD dot products' 48 terms) is one such method, which the JVM
# otherwise only interprets: a 48-term dot product over 3M rows took 30 s by default and 3 s with
# this flag (local[2]). A cluster's JVMs take it through spark.{driver,executor}.extraJavaOptions.
JIT_HUGE_METHODS = "-XX:-DontCompileHugeMethods"

# Tungsten page size of local sessions. Spark sizes pages from the memory per core (64 MB at a
# 4g driver), and every sort, aggregation and join buffer of a task holds at least one page: the
# scoring query's many such operators in one task peaked at 901 MB of execution memory on the
# demo's 30k events (over 80 % of a task's share while two tasks run, and a run failed with
# UNABLE_TO_ACQUIRE_MEMORY), 369 MB with 4 MB pages, in the same time. Larger records still get
# a page of their own size.
LOCAL_PAGE_SIZE = "4m"


def build_session(cfg: SparkConfig) -> SparkSession:
    """Return a SparkSession for ``cfg``.

    For ``local[...]`` masters a new session is built: driver memory from config, few
    shuffle partitions, bound to 127.0.0.1, UI off unless asked, small Tungsten pages
    (:data:`LOCAL_PAGE_SIZE`), huge generated methods JIT-compiled (:data:`JIT_HUGE_METHODS`; a
    ``spark.driver.extraJavaOptions`` in ``cfg.conf`` replaces it; ``cfg.conf`` wins over any of these).
    Otherwise the active or default session is taken as it is and only runtime SQL settings are
    applied. Either way the session gets PySpark's DataFrame debugging off
    (:data:`DATAFRAME_DEBUGGING`) unless ``cfg.conf`` sets it.
    """
    if cfg.master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
        builder = (
            SparkSession.builder.master(cfg.master)
            .appName(cfg.app_name)
            .config("spark.driver.memory", cfg.driver_memory)
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.ui.enabled", str(cfg.ui).lower())
            .config("spark.sql.shuffle.partitions", str(cfg.shuffle_partitions))
            .config("spark.default.parallelism", str(cfg.shuffle_partitions))
            .config("spark.sql.adaptive.enabled", "true")
            .config("spark.python.worker.reuse", "true")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
            .config("spark.buffer.pageSize", LOCAL_PAGE_SIZE)
        )
        java_options = [JIT_HUGE_METHODS]
        if os.path.isfile(cfg.log_config):  # quiet from the JVM's first line on
            java_options.append(f"-Dlog4j2.configurationFile={os.path.abspath(cfg.log_config)}")
        builder = builder.config("spark.driver.extraJavaOptions", " ".join(java_options))
        for key, value in {**_ALWAYS, **cfg.conf}.items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel("ERROR")
    else:
        spark = SparkSession.getActiveSession() or SparkSession.builder.appName(cfg.app_name).getOrCreate()
        for key, value in {**_ALWAYS, **cfg.conf}.items():
            try:
                spark.conf.set(key, value)
            except Exception as exc:  # static or protected settings on managed platforms
                log.warning("could not set %s on the existing session: %s", key, exc)
    log.info("spark %s master=%s delta-extension=%s", spark.version, cfg.master, has_delta_extension(spark))
    return spark


def has_delta_extension(spark: SparkSession) -> bool:
    """True when the Delta Lake Spark extension is configured and its classes load."""
    extensions = spark.conf.get("spark.sql.extensions", "") or ""
    if DELTA_EXTENSION not in extensions:
        return False
    try:
        jvm = spark.sparkContext._jvm
        if jvm is None:
            return False
        jvm.java.lang.Class.forName(DELTA_EXTENSION)
    except Exception:
        return False
    return True
