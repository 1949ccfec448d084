"""The runtime toolbox every stage shares: a per-worker model cache, a phase timer, a holder of
persisted frames, a temporary Spark conf, and the names of model files declared once.

* :class:`ModelCache` — a bounded, least-recently-used cache for models loaded inside Python
  workers (in the spirit of pyspark.ml's ``ModelCache``): with worker reuse a model version is
  loaded once per worker, not once per batch, and a long-lived worker never holds more than
  ``capacity`` of them.
* :class:`PhaseTimer` — logs ``<stage>: <phase> ...`` / ``... done in <s> s`` and keeps the seconds.
* :class:`Held` — the frames a stage persisted, released together.
* :func:`spark_conf` — set Spark SQL confs for a ``with`` block and restore them afterwards.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

# model artifacts: the file each model kind keeps in its registry folder
LIGHTGBM_MODEL_FILE = "model.txt"
NET_MODEL_FILE = "model.pt"
STACK_WEIGHTS_FILE = "stack.json"
# registry names of the ranking models
LIGHTGBM, JENN, FELU_NET, STACK, POPULARITY = "lightgbm", "jenn", "felu_net", "stack", "popularity"
NET_NAMES = (JENN, FELU_NET)
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
        yield
        self.seconds[name] = round(time.perf_counter() - started, 3)
        log.info("%s: %s done in %.1f s", self.stage, name, self.seconds[name])


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
