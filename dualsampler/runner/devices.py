"""The device a job runs on: `cuda` in a sweep means one free GPU per running job, held by a lock file;
its CPU threads: one by default, or (`auto`) the machine's cores shared among the jobs the launcher runs side by
side, or for a job running alone the cores other processes leave free."""

from __future__ import annotations

import fcntl
import math
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from ..validation import check_bounded, check_device, check_int, check_real

POLL_SECONDS = 1.0
BUSY_WINDOW_S = 0.2  # how long `busy_cores` watches the other processes' CPU use
DEFAULT_THREADS = 1  # `threads: null` (scripts/bench_threads.py measures the choice)
AUTO = "auto"  # `threads: auto`: the cores the launcher's other jobs and other processes leave free


def job_threads(threads: int | str | None, parallel_jobs: int | None, cores: int | None = None,
                busy: float | None = None) -> int:
    """torch threads for one job: `threads` when a number; 1 when None (the default); for `auto`, cores //
    parallel_jobs for jobs the launcher runs side by side and cores - busy (rounded) for a job running alone, at
    least 1.

    One thread by default: threads spin-waiting against any other busy process made the main job 2-4x slower on a
    2-core machine, and the images change (by 1/255 in a few pixels) with the thread count, so with `auto` they
    depend on the machine's load. `parallel_jobs` is the launcher's job count (joblib's n_jobs; -1 or 0 mean one
    job per core; None a single job). `cores` defaults to `available_cores()`, `busy` (cores other processes keep
    busy) to `busy_cores()`; both are read only for `auto`.
    """
    if threads is None:
        return DEFAULT_THREADS
    if threads != AUTO:
        if isinstance(threads, str):
            raise ValueError(f"threads must be a positive integer, {AUTO} or null; got {threads!r}")
        return int(check_bounded(threads, "threads"))
    cores = available_cores() if cores is None else check_int(cores, "cores", 1)
    if parallel_jobs is not None:
        jobs = cores if parallel_jobs <= 0 else parallel_jobs
        return max(1, cores // jobs)
    busy = busy_cores() if busy is None else check_real(busy, "busy", 0.0)
    return max(1, cores - math.floor(busy + 0.5))


def available_cores() -> int:
    """The CPUs this process may run on (its affinity: a container's or taskset's share), else the machine's."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _cpu_ticks(cpus: set[int]) -> tuple[int, int]:
    """(busy, total) CPU ticks of `cpus` since boot, from /proc/stat (idle and iowait count as free; steal as
    busy: another guest had the core)."""
    busy = total = 0
    with open("/proc/stat") as stat:
        for line in stat:
            name, *fields = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
                ticks = [int(x) for x in fields[:8]]
                total += sum(ticks)
                busy += sum(ticks) - ticks[3] - ticks[4]
    return busy, total


def busy_cores(window: float = BUSY_WINDOW_S) -> float:
    """Cores of `available_cores()` that other processes keep busy: their busy share over `window` seconds while
    this process sleeps (Linux's /proc/stat, no lag), else the 1-minute load average (which lags and counts this
    process too)."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    try:
        busy0, total0 = _cpu_ticks(cpus)
        time.sleep(window)
        busy1, total1 = _cpu_ticks(cpus)
    except OSError:
        return os.getloadavg()[0]
    return len(cpus) * (busy1 - busy0) / max(total1 - total0, 1)


@contextmanager
def claim_device(device: str, lock_dir: Path) -> Iterator[torch.device]:
    """Yield the torch device for `device`; plain `cuda` on a multi-GPU machine waits for a GPU no other job holds.

    Each GPU i is held through an exclusive `flock` on `lock_dir/cuda<i>.lock`, released when the job ends
    (also when its process dies), so joblib workers on one machine never share a GPU.
    """
    check_device(device)
    if device != "cuda" or torch.cuda.device_count() < 2:
        yield torch.device(device)
        return
    lock_dir.mkdir(parents=True, exist_ok=True)
    while True:
        for index in range(torch.cuda.device_count()):
            handle = open(lock_dir / f"cuda{index}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            try:
                yield torch.device("cuda", index)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
            return
        time.sleep(POLL_SECONDS)
