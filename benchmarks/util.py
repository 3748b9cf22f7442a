"""Timing and memory helpers of the benchmarks (standard library and psutil only, so a bench
can run where the pipeline's data stack is not installed, such as a bare GPU machine)."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable


class PeakMemory:
    """Peak resident memory of this process and the children it starts while the block runs
    (a Spark JVM, Dask workers), sampled every 0.2 s. Children that already existed (the JVM an
    earlier Spark run leaves behind) are not counted."""

    def __enter__(self) -> PeakMemory:
        import threading

        import psutil

        self._before = {p.pid for p in psutil.Process().children(recursive=True)}
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while True:
            total = 0
            for proc in [me, *(p for p in me.children(recursive=True)
                               if p.pid not in self._before)]:
                with contextlib.suppress(psutil.Error):  # a worker may exit meanwhile
                    total += proc.memory_info().rss
            self.peak = max(self.peak, total)
            if self._stop.wait(0.2):
                return

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mib(self) -> float:
        return self.peak / 2**20


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run ``cmd``; its wall seconds and the peak resident MiB of it and its children (sampled
    every 0.1 s), without this process's own memory. Raises with its stderr if it fails."""
    import subprocess

    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        total = 0
        with contextlib.suppress(psutil.Error):
            for p in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
        peak = max(peak, total)
        time.sleep(0.1)
    seconds = time.perf_counter() - t0
    stderr = proc.stderr.read()
    proc.stderr.close()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {stderr[-3000:]}")
    return seconds, peak / 2**20
