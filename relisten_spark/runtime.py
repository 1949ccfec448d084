"""The runtime toolbox every stage shares: a per-worker model cache, a phase timer, a holder of
persisted frames, a temporary Spark conf, and the names of model files declared once.

* :class:`ModelCache` — a bounded, least-recently-used cache for models loaded inside Python
  workers (in the spirit of pyspark.ml's ``ModelCache``): with worker reuse a model version is
  loaded once per worker, not once per batch, and a long-lived worker never holds more than
  ``capacity`` of them.
* :class:`PhaseTimer` — logs ``<stage>: <phase> ...`` / ``... done in <s> s`` and keeps the seconds.
* :class:`Held` — the frames a stage persisted, released together.
* :func:`spark_conf` — set Spark SQL confs for a ``with`` block and restore them afterwards.
* :func:`checkpoint` — materialise a frame and cut its lineage, in a way that survives the loss
  of an executor on a cluster (:func:`use_checkpoint_dir` says where).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from pyspark.sql import DataFrame, SparkSession

from relisten_spark.errors import RelistenError

log = logging.getLogger(__name__)

# model artifacts: the file each model kind keeps in its registry folder
LIGHTGBM_MODEL_FILE = "model.txt"
NET_MODEL_FILE = "model.pt"
STACK_WEIGHTS_FILE = "stack.json"
RETRIEVER_MODEL_FILE = "retriever.pt"  # beside it: items.parquet and vocab.json of its sequences
# registry names of the ranking models
LIGHTGBM, JENN, FELU_NET, STACK, POPULARITY = "lightgbm", "jenn", "felu_net", "stack", "popularity"
NET_NAMES = (JENN, FELU_NET)
RETRIEVER = "retriever"  # registry name of the transformer retriever
# gold.predictions derives logits from probabilities clipped to [LOGIT_EPS, 1 - LOGIT_EPS]; the
# stack and the scoring path apply the same clip
LOGIT_EPS = 1e-7

T = TypeVar("T")


class ModelCache:
    """A bounded LRU cache of loaded models, one per Python worker process.

    >>> cache = ModelCache(capacity=2)
    >>> cache.get("a", lambda: 1), cache.get("b", lambda: 2), cache.get("a", lambda: 99)
    (1, 2, 1)
    >>> cache.get("c", lambda: 3); cache.keys()
    3
    ['a', 'c']
    """

    def __init__(self, capacity: int = 8) -> None:
        if capacity < 1:
            raise ValueError(f"ModelCache capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._items: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        """The cached value of ``key``, loading it with ``load()`` on a miss (evicting the least
        recently used entry when full)."""
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = load()
        self._items[key] = value
        if len(self._items) > self.capacity:
            evicted, _ = self._items.popitem(last=False)
            log.info("model cache: evicted %s", evicted)
        return value

    def keys(self) -> list[Hashable]:
        """The cached keys, least recently used first."""
        return list(self._items)

    def clear(self) -> None:
        self._items.clear()


# one cache per Python worker: every model-scoring task of the process shares it
MODELS = ModelCache()


class PhaseTimer:
    """Times named phases of a stage and logs them.

    >>> timer = PhaseTimer("demo")
    >>> with timer.phase("load"):
    ...     pass
    >>> list(timer.seconds)
    ['load']
    """

    def __init__(self, stage: str, seconds: Mapping[str, float] | None = None) -> None:
        self.stage = stage
        self.seconds: dict[str, float] = dict(seconds or {})

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        log.info("%s: %s ...", self.stage, name)
        _PHASES.append((f"{self.stage}: {name}", started))
        try:
            yield
        finally:
            _PHASES.remove((f"{self.stage}: {name}", started))
        self.seconds[name] = round(time.perf_counter() - started, 3)
        log.info("%s: %s done in %.1f s", self.stage, name, self.seconds[name])


# the phases running now, innermost last, for :func:`heartbeat`
_PHASES: list[tuple[str, float]] = []
HEARTBEAT_S = 20.0


def spark_progress() -> str:
    """The running Spark stages' task counts, ``stage 12: 3/8 tasks`` ("" when none run)."""
    from pyspark import SparkContext

    context = SparkContext._active_spark_context
    if context is None:
        return ""
    tracker = context.statusTracker()
    infos = [tracker.getStageInfo(i) for i in tracker.getActiveStageIds()]
    return ", ".join(f"stage {i.stageId}: {i.numCompletedTasks}/{i.numTasks} tasks" for i in infos if i)


@contextmanager
def heartbeat(label: str, every_s: float = HEARTBEAT_S) -> Iterator[None]:
    """Log ``<label>: running for <s> s`` with the innermost :class:`PhaseTimer` phase and the
    running Spark stages' tasks every ``every_s`` seconds while the block runs, so that no long
    phase is silent."""
    started, stop = time.perf_counter(), threading.Event()

    def beat() -> None:
        while not stop.wait(every_s):
            now = time.perf_counter()
            parts = [f"{label}: running for {now - started:.0f} s"]
            if _PHASES:
                phase, since = _PHASES[-1]
                parts.append(f"in {phase} for {now - since:.0f} s")
            progress = spark_progress()
            log.info("%s", "; ".join([*parts, progress] if progress else parts))

    thread = threading.Thread(target=beat, name=f"heartbeat {label}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class Unpersistable(Protocol):
    def unpersist(self) -> Any: ...


class Held:
    """The persisted frames (or objects with ``unpersist()``) of one stage run."""

    def __init__(self) -> None:
        self._items: list[Unpersistable] = []

    def keep(self, item: Unpersistable) -> None:
        """Hold ``item`` (already persisted) until :meth:`release`."""
        self._items.append(item)

    def persist(self, df: Any) -> Any:
        """Persist ``df`` (memory and disk), hold it and return it."""
        from pyspark import StorageLevel

        persisted = df.persist(StorageLevel.MEMORY_AND_DISK)
        self._items.append(persisted)
        return persisted

    def release(self) -> None:
        """Unpersist everything held, newest first."""
        while self._items:
            self._items.pop().unpersist()


@contextmanager
def spark_conf(spark: SparkSession, settings: Mapping[str, str]) -> Iterator[None]:
    """Set ``settings`` on the session for a ``with`` block; restore (or unset) them after."""
    old: dict[str, str | None] = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, previous in old.items():
            if previous is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, previous)


# under lake.root: the reliable checkpoints of sessions that are not local (their files live
# as long as the session; spark.cleaner.referenceTracking.cleanCheckpoints removes them sooner)
CHECKPOINTS = "_checkpoints"


def is_local_master(master: str | None) -> bool:
    """True for a single-process master (``local``, ``local[4]``, ``local[*, 2]``), whose
    executors cannot be lost apart from the driver; false for ``local-cluster[...]`` and
    every cluster manager.

    >>> [is_local_master(m) for m in ("local", "local[2]", "local-cluster[2,1,1024]", "yarn")]
    [True, True, False, False]
    """
    return master is not None and (master == "local" or master.startswith("local["))


def use_checkpoint_dir(spark: SparkSession, lake_root: str) -> None:
    """Point reliable checkpoints at ``<lake_root>/_checkpoints`` on a non-local master, unless
    the session has a checkpoint directory already (``spark.checkpoint.dir``)."""
    sc = spark.sparkContext
    if not is_local_master(sc.master) and sc.getCheckpointDir() is None:
        sc.setCheckpointDir(f"{lake_root.rstrip('/')}/{CHECKPOINTS}")


def checkpoint(df: DataFrame) -> DataFrame:
    """``df`` materialised now and its lineage cut; same rows, partitions and order within them.

    On a local master a local checkpoint (executor storage, lost with its executor, which is
    the driver here); on any other master a reliable checkpoint to the session's checkpoint
    directory (:func:`use_checkpoint_dir`), which a lost executor does not take with it.
    Raises :class:`RelistenError` when a non-local session has no checkpoint directory.
    """
    sc = df.sparkSession.sparkContext
    if is_local_master(sc.master):
        return df.localCheckpoint(eager=True)
    if sc.getCheckpointDir() is None:
        raise RelistenError(
            f"master {sc.master} has no checkpoint directory: set spark.checkpoint.dir (the CLI "
            f"uses <lake.root>/{CHECKPOINTS})"
        )
    return df.checkpoint(eager=True)
