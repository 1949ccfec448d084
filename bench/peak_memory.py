"""Peak resident memory of a benchmark: this process and all its descendants (the driver JVM,
Python workers, DDP ranks), summed, sampled in a thread."""

from __future__ import annotations

import threading

import psutil


class PeakMemory:
    """``with PeakMemory() as m: ...`` then ``m.peak`` (bytes): the largest summed RSS seen at
    entry, every ``every_s`` seconds, and at exit."""

    def __init__(self, every_s: float = 0.5) -> None:
        self.every_s = every_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    @staticmethod
    def rss() -> int:
        me = psutil.Process()
        total = me.memory_info().rss
        for child in me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                continue
        return total

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakMemory:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())
