"""The device a job runs on: `cuda` in a sweep means one free GPU per running job, held by a lock file;
its CPU threads: the machine's cores shared among the jobs the launcher runs side by side."""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from ..validation import check_device

POLL_SECONDS = 1.0


def job_threads(threads: int | None, parallel_jobs: int | None, cores: int | None = None) -> int | None:
    """torch threads for one job: `threads` when set, else cores // parallel_jobs (at least 1); None (torch's
    default) for a job that runs alone.

    `parallel_jobs` is the launcher's job count (joblib's n_jobs; -1 or 0 mean one job per core; None a single
    job), so N side-by-side jobs do not each start all-core OpenMP pools that spin-wait against each other.
    """
    if threads is not None or parallel_jobs is None:
        return threads
    cores = cores or os.cpu_count() or 1
    jobs = cores if parallel_jobs <= 0 else parallel_jobs
    return max(1, cores // jobs)


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
