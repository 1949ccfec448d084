"""Progress inside a long training epoch: a log line about once a minute from rank 0.

An epoch at full scale runs for minutes (the retriever's 47k sequences, the nets' millions of
rows), and the per-epoch line comes only at its end; this one says how far the epoch is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 60.0  # seconds between two progress lines of an epoch

T = TypeVar("T")


def with_progress(
    batches: Iterable[T],
    size: Callable[[T], int],
    total: int,
    label: str | None,
    unit: str,
    every_s: float = PROGRESS_EVERY_S,
    clock: Callable[[], float] = time.perf_counter,
) -> Iterator[T]:
    """Yield ``batches`` unchanged; after a batch, when ``every_s`` seconds passed since the epoch
    started or since the last line, log how many of ``total`` ``unit`` (``size(batch)`` each) this
    rank has done, its rate and the time left at that rate. ``label`` None (ranks other than 0)
    logs nothing; an epoch shorter than ``every_s`` logs nothing, nor does its last batch (the
    epoch's own line follows).
    """
    started = last = clock()
    done = 0
    for batch in batches:
        yield batch
        done += size(batch)
        now = clock()
        if label is not None and now - last >= every_s and done < total:
            last = now
            rate = done / max(now - started, 1e-9)
            left = (total - done) / rate if rate > 0 else float("nan")
            log.info(
                "%s: %d of %d %s (%.0f %%) on this rank, %.1f %s/s, about %s left",
                label,
                done,
                total,
                unit,
                100.0 * done / max(total, 1),
                rate,
                unit,
                _minutes(left),
            )


def _minutes(seconds: float) -> str:
    """``"1 min"``, ``"12 min"``; under a minute ``"<1 min"``."""
    return "<1 min" if seconds < 60 else f"{seconds / 60:.0f} min"
